//! Who made a call, and what that caller may do. The rules are the
//! topology's: a role publishes only to the topic it owns, reads only the
//! topics it needs, consumes only in its own group, sends only where its
//! sagas send, and receives, answers and acknowledges only its own channels.

use ordershop_topology::Role;
use tonic::{Request, Status};

/// The authenticated caller of one request, put in its extensions by
/// [`crate::Authenticator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// Authentication is off on this server (no key): anything goes.
    Anyone,
    /// A caller that presented this role's token.
    Role(Role),
}

impl Caller {
    /// The caller of `request`. A request that never went through the
    /// authenticator is refused: a server wired without it must not become
    /// an open one by accident.
    pub fn of<T>(request: &Request<T>) -> Result<Caller, Status> {
        request
            .extensions()
            .get::<Caller>()
            .copied()
            .ok_or_else(|| Status::internal("the server checks no credentials (not wired)"))
    }

    fn allow(
        self,
        allowed: impl FnOnce(Role) -> bool,
        what: impl FnOnce() -> String,
    ) -> Result<(), Status> {
        match self {
            Caller::Anyone => Ok(()),
            Caller::Role(role) if allowed(role) => Ok(()),
            Caller::Role(role) => Err(Status::permission_denied(format!(
                "the {} role may not {}",
                role.slug(),
                what()
            ))),
        }
    }

    /// Append events to `topic`.
    pub fn may_publish(self, topic: &str) -> Result<(), Status> {
        self.allow(
            |r| r.publishes_to(topic),
            || format!("publish to topic {topic:?}"),
        )
    }

    /// Read the events of every topic of `topics`.
    pub fn may_read<'a>(self, topics: impl IntoIterator<Item = &'a str>) -> Result<(), Status> {
        topics.into_iter().try_for_each(|topic| {
            self.allow(
                |r| r.reads().contains(&topic),
                || format!("read topic {topic:?}"),
            )
        })
    }

    /// Consume (subscribe, ack, nack) `topics` in consumer group `group`:
    /// only the role's own group, only on topics it subscribes to.
    pub fn may_consume<'a>(
        self,
        group: &str,
        topics: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), Status> {
        self.allow(
            |r| r.service_name() == group,
            || format!("consume in group {group:?}"),
        )?;
        topics.into_iter().try_for_each(|topic| {
            self.allow(
                |r| r.subscriptions().iter().any(|s| s.topic == topic),
                || format!("consume topic {topic:?}"),
            )
        })
    }

    /// Send a request on `channel`, or wait for a response to one.
    pub fn may_send(self, channel: &str) -> Result<(), Status> {
        self.allow(
            |r| r.sends_to(channel),
            || format!("send on channel {channel:?}"),
        )
    }

    /// Store or load the snapshot named `name`: a role's own only (its
    /// service name), which holds only topics it may read.
    pub fn may_snapshot(self, name: &str) -> Result<(), Status> {
        self.allow(
            |r| r.service_name() == name,
            || format!("store or load the snapshot of {name:?}"),
        )
    }

    /// Receive, answer, acknowledge or refuse a request on `channel`.
    pub fn may_serve(self, channel: &str) -> Result<(), Status> {
        self.allow(
            |r| r.serves(channel),
            || format!("serve channel {channel:?}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn a_role_publishes_only_to_its_own_topic() {
        assert!(Caller::Role(Role::Billing).may_publish("billing").is_ok());
        let refused = Caller::Role(Role::Crm).may_publish("billing").unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied);
        assert!(refused.message().contains("crm"), "{}", refused.message());
        assert!(Caller::Anyone.may_publish("billing").is_ok());
    }

    #[test]
    fn a_role_keeps_only_its_own_snapshot() {
        assert!(
            Caller::Role(Role::Order)
                .may_snapshot("order-service")
                .is_ok()
        );
        let refused = Caller::Role(Role::Crm)
            .may_snapshot("order-service")
            .unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied);
        assert!(Caller::Anyone.may_snapshot("order-service").is_ok());
    }

    #[test]
    fn a_role_consumes_only_in_its_group_and_its_topics() {
        let order = Caller::Role(Role::Order);
        assert!(
            order
                .may_consume("order-service", ["billing", "shipping"])
                .is_ok()
        );
        assert!(order.may_consume("crm-service", ["billing"]).is_err());
        assert!(order.may_consume("order-service", ["customer"]).is_err());
    }

    #[test]
    fn reading_sending_and_serving_follow_the_topology() {
        assert!(Caller::Role(Role::Mail).may_read(["customer"]).is_err());
        assert!(
            Caller::Role(Role::ReadModel)
                .may_read(["customer", "mail"])
                .is_ok()
        );
        assert!(
            Caller::Role(Role::Crm)
                .may_send("mail-service.send")
                .is_ok()
        );
        assert!(
            Caller::Role(Role::Crm)
                .may_send("order-service.set_status")
                .is_err()
        );
        assert!(
            Caller::Role(Role::Mail)
                .may_serve("mail-service.send")
                .is_ok()
        );
        assert!(
            Caller::Role(Role::Crm)
                .may_serve("mail-service.send")
                .is_err()
        );
    }

    #[test]
    fn a_request_without_a_caller_is_refused() {
        assert_eq!(
            Caller::of(&Request::new(())).unwrap_err().code(),
            Code::Internal
        );
    }
}
