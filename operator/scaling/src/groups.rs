//! The consumer groups the operator owns, and their creation.
//!
//! Each consumer role reads every topic it subscribes to through a group
//! named after its service (`ordershop_topology::Role::service_name`). The
//! operator creates those groups before the consumers start, at the start of
//! the stream (`0`, never `$`): events written before a consumer's first
//! start are its work too.

use ordershop_topology::{Role, StreamKeys};
use redis::{Value, aio::ConnectionLike};

/// One consumer group of one role on one stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupRef {
    pub role: Role,
    /// Event topic (`order`).
    pub topic: &'static str,
    /// Stream key (`events:order`).
    pub stream: String,
    /// Group name: the role's service name (`inventory-service`).
    pub group: &'static str,
}

impl GroupRef {
    pub fn new(role: Role, topic: &'static str) -> Self {
        Self {
            role,
            topic,
            stream: StreamKeys::new(topic).stream,
            group: role.service_name(),
        }
    }
}

impl std::fmt::Display for GroupRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "group {} on {}", self.group, self.stream)
    }
}

/// Every consumer group of the given roles, once each, in role order.
pub fn consumer_groups(roles: &[Role]) -> Vec<GroupRef> {
    let mut groups: Vec<GroupRef> = Vec::new();
    for &role in roles {
        for subscription in role.subscriptions() {
            let group = GroupRef::new(role, subscription.topic);
            if !groups.contains(&group) {
                groups.push(group);
            }
        }
    }
    groups
}

/// What [`create_groups`] found for one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupOutcome {
    Created,
    AlreadyExisted,
}

/// A group [`create_groups`] made sure of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnsuredGroup {
    pub group: GroupRef,
    pub outcome: GroupOutcome,
}

#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// Redis could not be reached or answered out of protocol.
    #[error("creating consumer groups: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis refused some groups (e.g. the key holds something other than a
    /// stream); the others were created.
    #[error("Redis refused to create {}", describe_refusals(.0))]
    Refused(Vec<(GroupRef, String)>),
    #[error("XGROUP CREATE pipeline of {sent} commands answered {received} replies")]
    UnexpectedReply { sent: usize, received: usize },
}

fn describe_refusals(refusals: &[(GroupRef, String)]) -> String {
    refusals
        .iter()
        .map(|(group, error)| format!("{group} ({error})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Creates every consumer group of the given roles that does not exist yet,
/// creating empty streams where needed (`XGROUP CREATE <stream> <group> 0
/// MKSTREAM`): one pipelined round trip, one command per group. A group that
/// exists already (`BUSYGROUP`) is left as it is.
pub async fn ensure_groups<C>(conn: &mut C, roles: &[Role]) -> Result<Vec<EnsuredGroup>, GroupError>
where
    C: ConnectionLike + Send,
{
    create_groups(conn, &consumer_groups(roles)).await
}

/// [`ensure_groups`] for an explicit list, e.g. the groups a measurement
/// reported missing ([`crate::Backlog::missing_groups`]).
pub async fn create_groups<C>(
    conn: &mut C,
    groups: &[GroupRef],
) -> Result<Vec<EnsuredGroup>, GroupError>
where
    C: ConnectionLike + Send,
{
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for group in groups {
        pipe.cmd("XGROUP")
            .arg("CREATE")
            .arg(&group.stream)
            .arg(group.group)
            .arg("0")
            .arg("MKSTREAM");
    }
    let replies: Vec<Value> = pipe.query_async(conn).await?;
    if replies.len() != groups.len() {
        return Err(GroupError::UnexpectedReply {
            sent: groups.len(),
            received: replies.len(),
        });
    }
    let mut ensured = Vec::with_capacity(groups.len());
    let mut refused = Vec::new();
    for (group, reply) in groups.iter().zip(replies) {
        match reply {
            Value::ServerError(error) if error.code() == "BUSYGROUP" => {
                ensured.push(EnsuredGroup {
                    group: group.clone(),
                    outcome: GroupOutcome::AlreadyExisted,
                })
            }
            Value::ServerError(error) => {
                refused.push((group.clone(), crate::reply::error_text(&error)))
            }
            _ => {
                tracing::info!(stream = %group.stream, group = group.group, "created consumer group");
                ensured.push(EnsuredGroup {
                    group: group.clone(),
                    outcome: GroupOutcome::Created,
                });
            }
        }
    }
    if refused.is_empty() {
        Ok(ensured)
    } else {
        Err(GroupError::Refused(refused))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_follow_the_topology() {
        let groups = consumer_groups(&Role::ALL);
        let expected: usize = Role::ALL.iter().map(|r| r.subscriptions().len()).sum();
        assert_eq!(groups.len(), expected);
        let crm_on_order = GroupRef::new(Role::Crm, "order");
        assert_eq!(crm_on_order.stream, "events:order");
        assert_eq!(crm_on_order.group, "crm-service");
        assert!(groups.contains(&crm_on_order));
    }

    #[test]
    fn a_role_listed_twice_yields_its_groups_once() {
        assert_eq!(
            consumer_groups(&[Role::Order, Role::Order]),
            consumer_groups(&[Role::Order])
        );
    }
}
