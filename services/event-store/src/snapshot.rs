//! Snapshots of the services' views, kept beside the streams they fold.
//!
//! One hash per service (`ordershop_topology::snapshot_key`): the layout
//! number, the bytes, and the position of each topic. Only the newest is
//! kept, and "newest" is decided by the positions in one script, so two
//! replicas of a role racing (or a slow one finishing late) never replace
//! a snapshot with an older one: whatever trims streams behind the stored
//! positions can rely on them never moving back.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use ordershop_topology::{EntryId, snapshot_key};

use crate::{StoreError, StreamStore, validate};

/// Largest snapshot the store takes: far above what a view of millions of
/// entities needs, and below Redis' 512 MiB limit on one value.
pub const MAX_SNAPSHOT_BYTES: u64 = 256 * 1024 * 1024;

/// Stores the snapshot unless a stored one is ahead on any topic.
/// KEYS: the hash. ARGV: format, data, n, then n pairs topic, entry id,
/// then 1 to replace even a newer one. Returns 1 stored, 0 refused as older.
const PUT: &str = r#"
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local n = tonumber(ARGV[3])
local replace = ARGV[4 + 2 * n] == '1'
for i = 0, n - 1 do
  if replace then break end
  local old = redis.call('HGET', KEYS[1], 'pos:' .. ARGV[4 + 2 * i])
  if old then
    local oms, oseq = parse(old)
    local nms, nseq = parse(ARGV[5 + 2 * i])
    if nms < oms or (nms == oms and nseq < oseq) then return 0 end
  end
end
redis.call('DEL', KEYS[1])
local fields = {'format', ARGV[1], 'data', ARGV[2]}
for i = 0, n - 1 do
  fields[#fields + 1] = 'pos:' .. ARGV[4 + 2 * i]
  fields[#fields + 1] = ARGV[5 + 2 * i]
end
redis.call('HSET', KEYS[1], unpack(fields))
return 1
"#;

/// A service's view as of some position per topic, in the service's own
/// layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub name: String,
    pub format: u32,
    /// Topic -> entry id of the last event the snapshot holds.
    pub positions: BTreeMap<String, String>,
    pub data: Vec<u8>,
    /// Store it even over a newer one (see the proto's `replace_newer`).
    pub replace_newer: bool,
}

impl Snapshot {
    /// Refuses a name, topic or position the store would not know.
    pub fn validate(&self) -> Result<(), StoreError> {
        validate::snapshot_name(&self.name)?;
        for (topic, position) in &self.positions {
            validate::topic(topic)?;
            if EntryId::parse(position).is_none() {
                return Err(StoreError::InvalidArgument(format!(
                    "snapshot position {position:?} of topic {topic:?} is not an entry id"
                )));
            }
        }
        if self.data.len() as u64 > MAX_SNAPSHOT_BYTES {
            return Err(StoreError::InvalidArgument(format!(
                "snapshot of {} bytes exceeds the limit of {MAX_SNAPSHOT_BYTES}",
                self.data.len()
            )));
        }
        Ok(())
    }
}

impl StreamStore {
    /// Stores `snapshot` unless the stored one is ahead on some topic;
    /// `Ok(false)` then. It goes over a connection of its own, so a large
    /// snapshot does not hold up the appends sharing the store's.
    pub async fn put_snapshot(&self, snapshot: &Snapshot) -> Result<bool, StoreError> {
        snapshot.validate()?;
        let mut conn = self
            .redis()
            .client()
            .get_multiplexed_async_connection()
            .await?;
        static SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(PUT));
        let mut invocation = SCRIPT.prepare_invoke();
        invocation
            .key(snapshot_key(&snapshot.name))
            .arg(snapshot.format)
            .arg(snapshot.data.as_slice())
            .arg(snapshot.positions.len());
        for (topic, position) in &snapshot.positions {
            invocation.arg(topic).arg(position);
        }
        invocation.arg(if snapshot.replace_newer { "1" } else { "0" });
        let stored: i64 = invocation.invoke_async(&mut conn).await?;
        Ok(stored == 1)
    }

    /// The snapshot stored under `name`, if any.
    pub async fn get_snapshot(&self, name: &str) -> Result<Option<Snapshot>, StoreError> {
        validate::snapshot_name(name)?;
        let mut conn = self
            .redis()
            .client()
            .get_multiplexed_async_connection()
            .await?;
        let fields: BTreeMap<String, Vec<u8>> = redis::cmd("HGETALL")
            .arg(snapshot_key(name))
            .query_async(&mut conn)
            .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let text = |field: &str| {
            fields
                .get(field)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        let Some(format) = text("format").and_then(|f| f.parse().ok()) else {
            // Not written by `put_snapshot`: the service replays instead.
            tracing::warn!(key = %snapshot_key(name), "snapshot without a readable format; ignored");
            return Ok(None);
        };
        let positions = fields
            .iter()
            .filter_map(|(field, value)| {
                let topic = field.strip_prefix("pos:")?;
                Some((
                    topic.to_owned(),
                    String::from_utf8_lossy(value).into_owned(),
                ))
            })
            .collect();
        let mut fields = fields;
        Ok(Some(Snapshot {
            name: name.to_owned(),
            format,
            positions,
            data: fields.remove("data").unwrap_or_default(),
            replace_newer: false,
        }))
    }
}
