//! Consumers that are gone are forgotten.
//!
//! Every subscriber is a consumer of its group, named after its instance
//! (a pod, a process): with pods coming and going, each group would list
//! every consumer that ever read from it, forever. A consumer that holds no
//! pending entry and has not read for `idle` is removed from its group
//! (`XGROUP DELCONSUMER` loses nothing then: there is nothing pending to
//! lose, and a subscriber that comes back is simply created again).

use std::time::Duration;

use ordershop_redis::Redis;
use redis::streams::StreamInfoGroupsReply;
use tokio_util::sync::CancellationToken;

use crate::StoreError;

/// How often the store looks for idle consumers.
const EVERY: Duration = Duration::from_secs(60);

/// One group's idle consumers with nothing pending, removed atomically: a
/// consumer cannot read between the check and the removal (which would drop
/// what it read from the pending list). KEYS: stream. ARGV: group, idle ms.
/// Returns how many were removed.
const PRUNE: &str = r#"
local removed = 0
for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #consumer, 2 do info[consumer[i]] = consumer[i + 1] end
  if info['pending'] == 0 and info['idle'] > tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    removed = removed + 1
  end
end
return removed
"#;

/// Removes, from every group of every `events:*` stream, the consumers with
/// nothing pending that have been idle longer than `idle`. Returns how many.
pub async fn prune_idle_consumers(redis: &Redis, idle: Duration) -> Result<u64, StoreError> {
    let mut conn = redis.conn();
    let mut removed = 0;
    let mut cursor: u64 = 0;
    loop {
        let (next, streams): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("events:*")
            .arg("TYPE")
            .arg("stream")
            .arg("COUNT")
            .arg(100)
            .query_async(&mut conn)
            .await?;
        for stream in streams {
            let groups: StreamInfoGroupsReply = redis::cmd("XINFO")
                .arg("GROUPS")
                .arg(&stream)
                .query_async(&mut conn)
                .await?;
            for group in groups.groups {
                let pruned: u64 = redis::Script::new(PRUNE)
                    .key(&stream)
                    .arg(&group.name)
                    .arg(idle.as_millis() as u64)
                    .invoke_async(&mut conn)
                    .await?;
                removed += pruned;
            }
        }
        if next == 0 {
            return Ok(removed);
        }
        cursor = next;
    }
}

/// Prunes idle consumers every minute until `shutdown`.
pub(crate) async fn run(redis: Redis, idle: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
        match prune_idle_consumers(&redis, idle).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "idle consumers removed from their groups"),
            Err(error) => tracing::warn!(%error, "looking for idle consumers"),
        }
    }
}
