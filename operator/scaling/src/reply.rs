//! Reading Redis replies: stream IDs, `XINFO GROUPS`, `TIME`, counts, and
//! server errors as text. RESP2 and RESP3 shapes are both accepted, so the
//! caller may open its connection with either protocol.

use ordershop_topology::EntryId;
use redis::{ServerError, Value};

/// A stream entry ID as Redis writes it, `<ms>-<seq>`; the shorter forms
/// [`EntryId::parse`] accepts from people never come from Redis.
pub(crate) fn stream_id(text: &str) -> Result<EntryId, String> {
    text.contains('-')
        .then(|| EntryId::parse(text))
        .flatten()
        .ok_or_else(|| format!("not a stream ID: {text:?}"))
}

/// `CODE detail`, without the quotes `ServerError`'s Display adds.
pub(crate) fn error_text(error: &ServerError) -> String {
    match error.details() {
        Some(details) => format!("{} {details}", error.code()),
        None => error.code().to_string(),
    }
}

pub(crate) fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

pub(crate) fn count(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        other => text(other)?.parse().ok(),
    }
}

/// One group as `XINFO GROUPS` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupInfo {
    pub(crate) name: String,
    pub(crate) pending: u64,
    pub(crate) last_delivered: EntryId,
    /// `None` when Redis cannot tell (reply `nil`): after XDEL/XTRIM left a
    /// gap past the last delivered ID, or a group set to an arbitrary ID.
    pub(crate) lag: Option<u64>,
}

/// Field/value pairs of one group: a flat array in RESP2, a map in RESP3.
fn pairs(value: &Value) -> Option<Vec<(String, &Value)>> {
    match value {
        Value::Array(items) => items
            .chunks(2)
            .map(|pair| match pair {
                [key, value] => Some((text(key)?, value)),
                _ => None,
            })
            .collect(),
        Value::Map(items) => items
            .iter()
            .map(|(key, value)| Some((text(key)?, value)))
            .collect(),
        _ => None,
    }
}

/// Parses the reply of `XINFO GROUPS <stream>` (Redis 7 fields).
pub(crate) fn groups(reply: &Value) -> Result<Vec<GroupInfo>, String> {
    let Value::Array(groups) = reply else {
        return Err(format!("XINFO GROUPS answered {reply:?}"));
    };
    groups.iter().map(group).collect()
}

fn group(value: &Value) -> Result<GroupInfo, String> {
    let fields = pairs(value).ok_or_else(|| format!("XINFO GROUPS entry {value:?}"))?;
    let field = |name: &str| {
        fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| *value)
            .ok_or_else(|| format!("XINFO GROUPS entry without {name:?} (Redis 7 or later needed)"))
    };
    let name = text(field("name")?).ok_or("XINFO GROUPS: unreadable group name")?;
    let pending = count(field("pending")?).ok_or("XINFO GROUPS: unreadable pending")?;
    let last_delivered = stream_id(
        &text(field("last-delivered-id")?).ok_or("XINFO GROUPS: unreadable last-delivered-id")?,
    )?;
    let lag = match field("lag")? {
        Value::Nil => None,
        value => Some(count(value).ok_or("XINFO GROUPS: unreadable lag")?),
    };
    Ok(GroupInfo {
        name,
        pending,
        last_delivered,
        lag,
    })
}

/// `TIME` → milliseconds since the epoch on the Redis server's clock.
pub(crate) fn server_millis(reply: &Value) -> Option<u64> {
    let Value::Array(parts) = reply else {
        return None;
    };
    let [secs, micros] = parts.as_slice() else {
        return None;
    };
    Some(count(secs)?.checked_mul(1_000)? + count(micros)? / 1_000)
}

/// Whether a server error says the key does not exist (`XINFO GROUPS` on a
/// missing stream answers `ERR no such key`).
pub(crate) fn is_no_such_key(error: &ServerError) -> bool {
    error
        .details()
        .is_some_and(|d| d.to_ascii_lowercase().contains("no such key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn stream_ids_parse_and_print() {
        let id = stream_id("1700000000123-7").unwrap();
        assert_eq!(
            id,
            EntryId {
                ms: 1_700_000_000_123,
                seq: 7
            }
        );
        assert_eq!(id.to_string(), "1700000000123-7");
        assert!(stream_id("17").is_err());
        assert!(stream_id("a-1").is_err());
    }

    #[test]
    fn xinfo_groups_resp2_with_nil_lag() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("name"),
            bulk("crm-service"),
            bulk("consumers"),
            Value::Int(1),
            bulk("pending"),
            Value::Int(3),
            bulk("last-delivered-id"),
            bulk("5-0"),
            bulk("entries-read"),
            Value::Nil,
            bulk("lag"),
            Value::Nil,
        ])]);
        assert_eq!(
            groups(&reply).unwrap(),
            vec![GroupInfo {
                name: "crm-service".into(),
                pending: 3,
                last_delivered: EntryId { ms: 5, seq: 0 },
                lag: None,
            }]
        );
    }

    #[test]
    fn xinfo_groups_resp3_map() {
        let reply = Value::Array(vec![Value::Map(vec![
            (bulk("name"), bulk("g")),
            (bulk("pending"), Value::Int(0)),
            (bulk("last-delivered-id"), bulk("0-0")),
            (bulk("lag"), Value::Int(12)),
        ])]);
        assert_eq!(groups(&reply).unwrap()[0].lag, Some(12));
    }

    #[test]
    fn xinfo_groups_without_lag_says_redis_7_is_needed() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("name"),
            bulk("g"),
            bulk("pending"),
            Value::Int(0),
            bulk("last-delivered-id"),
            bulk("0-0"),
        ])]);
        assert!(groups(&reply).unwrap_err().contains("Redis 7"));
    }

    #[test]
    fn time_becomes_millis() {
        let reply = Value::Array(vec![bulk("1700000000"), bulk("123456")]);
        assert_eq!(server_millis(&reply), Some(1_700_000_000_123));
    }
}
