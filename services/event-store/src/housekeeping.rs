//! Consumers that are gone are forgotten, and so are the event-id records
//! of earlier releases (see `retire_legacy_event_ids`).
//!
//! Every subscriber is a consumer of its group, named after its instance
//! (a pod, a process): with pods coming and going, each group would list
//! every consumer that ever read from it, forever. A consumer that holds no
//! pending entry and has not read for `idle` is removed from its group
//! (`XGROUP DELCONSUMER` loses nothing then: there is nothing pending to
//! lose, and a subscriber that comes back is simply created again).

use std::time::Duration;

use ordershop_redis::Redis;
use ordershop_topology::{StreamKeys, TOPICS};
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

/// Earlier releases kept every event id of a topic in one hash, forever
/// (`legacy_event_ids`). The publish script still looks ids up there while
/// it exists; here it is given the expiry of a window bucket (once: `NX`),
/// so it goes when every id in it is past the window. Renaming it into a
/// bucket instead would lose the ids an earlier release writes there
/// during a rolling upgrade. Returns how many hashes it gave an expiry.
pub async fn retire_legacy_event_ids(redis: &Redis, window: Duration) -> Result<u64, StoreError> {
    let mut conn = redis.conn();
    let expire = (window * 2).as_secs().max(1);
    let mut retired = 0;
    for topic in TOPICS {
        let set: bool = redis::cmd("EXPIRE")
            .arg(StreamKeys::new(topic).legacy_event_ids)
            .arg(expire)
            .arg("NX")
            .query_async(&mut conn)
            .await?;
        retired += u64::from(set);
    }
    Ok(retired)
}

/// Retires the legacy event-id hashes at once, then prunes idle consumers
/// (and retires again) every minute until `shutdown`.
pub(crate) async fn run(
    redis: Redis,
    idle: Duration,
    event_id_window: Duration,
    shutdown: CancellationToken,
) {
    loop {
        match retire_legacy_event_ids(&redis, event_id_window).await {
            Ok(0) => {}
            Ok(retired) => tracing::info!(
                retired,
                "event-id hashes of an earlier release set to expire"
            ),
            Err(error) => tracing::warn!(%error, "retiring the earlier release's event-id hashes"),
        }
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
