//! What each role may do in Redis: its own keys (its backlog metrics
//! measure only those), every command but the administrative and
//! dangerous ones. The operator makes one ACL user per role on the Redis
//! it manages, `ordershop local` on its own; only these roles talk to
//! Redis, every other role reaches it through the event store's and the
//! queue's gRPC APIs.

use crate::Role;

/// Commands of every role's user: data commands and scripts, none of
/// `CONFIG`, `DEBUG`, `FLUSHALL`, `KEYS`, `SHUTDOWN`, `CLIENT KILL`, ...
const COMMANDS: &str = "+@all -@admin -@dangerous";

impl Role {
    /// The ACL rules of the role's Redis user (key patterns, then
    /// commands), or `None` for a role that does not use Redis.
    pub const fn redis_acl(self) -> Option<&'static [&'static str]> {
        match self {
            // Streams and their keys; and the read model's checkpoints,
            // read only, since retention trims no topic past them.
            Role::EventStore => Some(&[
                "~events:*",
                "~{events:*",
                "%R~{readmodel*}:checkpoint",
                COMMANDS,
            ]),
            // Queues and the channel registry.
            Role::MessageQueue => Some(&["~queue:*", COMMANDS]),
            // Its cache only.
            Role::ReadModel => Some(&["~{readmodel*", COMMANDS]),
            _ => None,
        }
    }

    /// The role's user as a Redis config line (`user ...`), for a config
    /// file Redis includes. `password` must hold no whitespace (generated
    /// ones are alphanumeric).
    pub fn redis_acl_line(self, password: &str) -> Option<String> {
        let rules = self.redis_acl()?.join(" ");
        Some(format!(
            "user {} reset on >{password} {rules}\n",
            self.slug()
        ))
    }

    /// Whether the role connects to Redis itself.
    pub const fn uses_redis(self) -> bool {
        self.redis_acl().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CHANNELS_SET, QueueKeys, ReadModelKeys, StreamKeys, stream_key};

    /// Redis' glob, for `*` only (all the patterns above use).
    fn matches(pattern: &str, key: &str) -> bool {
        let parts: Vec<&str> = pattern.split('*').collect();
        let (first, rest) = parts.split_first().unwrap();
        let Some(mut left) = key.strip_prefix(first) else {
            return false;
        };
        for (i, part) in rest.iter().enumerate() {
            if i == rest.len() - 1 {
                return left.ends_with(part);
            }
            match left.find(part) {
                Some(at) => left = &left[at + part.len()..],
                None => return false,
            }
        }
        left.is_empty()
    }

    /// Whether `role` may write `key` (a pattern without `%R`).
    fn writes(role: Role, key: &str) -> bool {
        role.redis_acl()
            .unwrap()
            .iter()
            .filter_map(|rule| rule.strip_prefix('~'))
            .any(|pattern| matches(pattern, key))
    }

    fn reads(role: Role, key: &str) -> bool {
        writes(role, key)
            || role
                .redis_acl()
                .unwrap()
                .iter()
                .filter_map(|rule| rule.strip_prefix("%R~"))
                .any(|pattern| matches(pattern, key))
    }

    #[test]
    fn each_role_writes_its_own_keys_only() {
        let stream = StreamKeys::new("order");
        let queue = QueueKeys::new("order-service.create_orders");
        let cache = ReadModelKeys::new("order");
        let stream_keys = [
            stream_key("order"),
            stream.versions.clone(),
            stream.event_ids(1234),
            stream.legacy_event_ids.clone(),
            stream.head.clone(),
            stream.trimmed.clone(),
            crate::dead_letter_stream("order"),
            crate::snapshot_key("order-service"),
        ];
        let queue_keys = [
            queue.waiting.clone(),
            queue.messages.clone(),
            queue.dead_reasons.clone(),
            format!("{}abc", queue.reply_prefix),
            CHANNELS_SET.to_owned(),
        ];
        for key in &stream_keys {
            assert!(writes(Role::EventStore, key), "{key}");
            assert!(!reads(Role::MessageQueue, key), "{key}");
            assert!(!reads(Role::ReadModel, key), "{key}");
        }
        for key in &queue_keys {
            assert!(writes(Role::MessageQueue, key), "{key}");
            assert!(!reads(Role::EventStore, key), "{key}");
            assert!(!reads(Role::ReadModel, key), "{key}");
        }
        for key in cache.all() {
            assert!(writes(Role::ReadModel, key), "{key}");
            assert!(!writes(Role::EventStore, key) && !reads(Role::MessageQueue, key));
            // Retention reads the checkpoint, nothing else of the cache.
            assert_eq!(
                reads(Role::EventStore, key),
                key == cache.checkpoint,
                "{key}"
            );
        }
        for key in ReadModelKeys::first_layout("order") {
            assert!(writes(Role::ReadModel, &key), "{key}");
        }
    }

    #[test]
    fn only_the_infrastructure_and_the_read_model_use_redis() {
        let users: Vec<Role> = Role::ALL.into_iter().filter(|r| r.uses_redis()).collect();
        assert_eq!(
            users,
            [Role::EventStore, Role::MessageQueue, Role::ReadModel]
        );
    }
}
