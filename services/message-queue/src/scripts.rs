//! The queue's multi-key steps, each one atomic Lua script over keys that
//! share the channel's hash tag.

use redis::Script;

/// KEYS: waiting, messages, idempotency key (or the messages key again when
/// there is none). ARGV: id, envelope, idempotency ttl ms, has key (0/1),
/// payload fingerprint, most waiting messages (0: no bound). The key
/// remembers "<id> <fingerprint>".
/// Returns {message id, 0 new | 1 duplicate | 2 key reused for another
/// payload | 3 the channel is full}. A duplicate is answered even when the
/// channel is full: it adds nothing. The bound reads the length LPUSH
/// returns and takes the message back out when it is one too many, so a
/// send costs no extra command unless the channel is full.
pub(crate) const SEND: &str = r#"
if ARGV[4] == '1' then
  local existing = redis.call('GET', KEYS[3])
  if existing then
    local id, fingerprint = string.match(existing, '^(%S+) ?(%S*)$')
    if fingerprint ~= '' and fingerprint ~= ARGV[5] then return {id, 2} end
    return {id, 1}
  end
  redis.call('SET', KEYS[3], ARGV[1] .. ' ' .. ARGV[5], 'PX', ARGV[3])
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local waiting = redis.call('LPUSH', KEYS[1], ARGV[1])
local cap = tonumber(ARGV[6])
if cap > 0 and waiting > cap then
  redis.call('LPOP', KEYS[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  if ARGV[4] == '1' then redis.call('DEL', KEYS[3]) end
  return {'', 3}
end
return {ARGV[1], 0}
"#;

/// Functions the LEASE and NACK scripts start with (`with_helpers`).
const HELPERS: &str = r#"
-- Dead-letters `id` with `reason`, keeping the newest `kept` (the oldest
-- beyond is forgotten, body and all).
local function dead_letter(dead, reasons, messages, attempts, id, reason, kept)
  redis.call('LPUSH', dead, id)
  redis.call('HSET', reasons, id, reason)
  if redis.call('LLEN', dead) > tonumber(kept) then
    local oldest = redis.call('RPOP', dead)
    redis.call('HDEL', messages, oldest)
    redis.call('HDEL', attempts, oldest)
    redis.call('HDEL', reasons, oldest)
  end
end
-- Records a refusal in the attempts field: refusals x stride, deliveries
-- since then start over (see ordershop_redis::delivery_count).
local function record_refusal(attempts, id, stride)
  local n = tonumber(redis.call('HGET', attempts, id) or '0')
  redis.call('HSET', attempts, id, string.format('%d', (math.floor(n / stride) + 1) * stride))
end
"#;

/// A script preceded by [`HELPERS`].
fn with_helpers(body: &str) -> Script {
    Script::new(&format!("{HELPERS}{body}"))
}

/// After BLMOVE put `id` in flight: lease it and count the delivery, or
/// dead-letter it when it is poison (leased more than max times in a row
/// without any answer). The attempts field holds two counts (see
/// `ordershop_redis::delivery_count`): refusals × stride + deliveries since.
/// KEYS: inflight, leases, messages, attempts, dead, dead reasons. ARGV:
/// id, lease expiry ms, max unanswered deliveries, stride, dead letters
/// kept (the oldest beyond it is forgotten, body and all). Returns
/// {envelope, attempt} or {false, attempt} when it was dead-lettered or has
/// no body.
pub(crate) const LEASE: &str = r#"
local id = ARGV[1]
local body = redis.call('HGET', KEYS[3], id)
if not body then
  redis.call('LREM', KEYS[1], 1, id)
  redis.call('ZREM', KEYS[2], id)
  return {false, 0}
end
local n = redis.call('HINCRBY', KEYS[4], id, 1)
local stride = tonumber(ARGV[4])
local unanswered = n % stride
local attempt = math.floor(n / stride) + unanswered
if unanswered > tonumber(ARGV[3]) then
  redis.call('LREM', KEYS[1], 1, id)
  redis.call('ZREM', KEYS[2], id)
  dead_letter(KEYS[5], KEYS[6], KEYS[3], KEYS[4], id, 'leased ' .. unanswered - 1 ..
    ' times in a row without an answer (its consumer crashed or hung each time)', ARGV[5])
  return {false, attempt}
end
redis.call('ZADD', KEYS[2], ARGV[2], id)
return {body, attempt}
"#;

/// Done: forget the message wherever it is (a late ack after the lease ran
/// out still prevents a second run if it was not redelivered yet).
/// KEYS: inflight, leases, messages, attempts, waiting, delayed. ARGV: id.
/// Returns how many places held it (0 = unknown id).
pub(crate) const ACK: &str = r#"
local id = ARGV[1]
local found = redis.call('LREM', KEYS[1], 1, id) + redis.call('LREM', KEYS[5], 1, id)
  + redis.call('ZREM', KEYS[6], id)
redis.call('ZREM', KEYS[2], id)
redis.call('HDEL', KEYS[3], id)
redis.call('HDEL', KEYS[4], id)
return found
"#;

/// The handler failed: dead-letter a permanent failure; retry any other
/// (now, in front of the waiting list, or later through the delayed set)
/// however often it takes, recording the refusal in the attempts field.
/// KEYS: inflight, leases, delayed, waiting, dead, attempts, dead reasons,
/// messages. ARGV: id, retry at ms (0 = now), permanent (0/1), stride,
/// reason, dead letters kept.
/// Returns -1 unknown, 0 retry, 1 dead.
pub(crate) const NACK: &str = r#"
local id = ARGV[1]
local stride = tonumber(ARGV[4])
if redis.call('LREM', KEYS[1], 1, id) == 0 then
  -- Its lease ran out while the handler worked and it was put back: the
  -- refusal still counts, or a handler slower than the lease would make
  -- the message look poison.
  if ARGV[3] ~= '1' and redis.call('HEXISTS', KEYS[8], id) == 1 then
    record_refusal(KEYS[6], id, stride)
  end
  return -1
end
redis.call('ZREM', KEYS[2], id)
if ARGV[3] == '1' then
  dead_letter(KEYS[5], KEYS[7], KEYS[8], KEYS[6], id, ARGV[5], ARGV[6])
  return 1
end
record_refusal(KEYS[6], id, stride)
if ARGV[2] == '0' then
  redis.call('RPUSH', KEYS[4], id)
else
  redis.call('ZADD', KEYS[3], ARGV[2], id)
end
return 0
"#;

/// Store the response for the caller and finish the message. The reply
/// lives `reply ttl`, or longer when the envelope asks to keep it as long
/// as its idempotency key (`keep_reply_until_ms`, serialized first).
/// Only a pending message can be answered (a reply stored for an id that
/// is not, or not yet, a message would be taken by a later caller for the
/// real one); answering one already answered is a retry and changes
/// nothing. Who may answer is the gRPC layer's check: only the role that
/// serves the channel.
/// KEYS: inflight, leases, messages, attempts, reply, signal. ARGV: id,
/// payload, reply ttl ms.
/// Returns 1 answered, 0 not awaiting an answer, 2 answered before.
pub(crate) const RESPOND: &str = r#"
local id = ARGV[1]
local ttl = tonumber(ARGV[3])
local body = redis.call('HGET', KEYS[3], id)
if not body then
  if redis.call('EXISTS', KEYS[5]) == 1 then return 2 end
  return 0
end
do
  local keep = tonumber(string.match(body, '^{"keep_reply_until_ms":(%d+)') or '0')
  if keep > 0 then
    local now = redis.call('TIME')
    local left = keep - (tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000))
    if left > ttl then ttl = left end
  end
end
redis.call('SET', KEYS[5], ARGV[2], 'PX', ttl)
redis.call('RPUSH', KEYS[6], '1')
redis.call('PEXPIRE', KEYS[6], ttl)
redis.call('LREM', KEYS[1], 1, id)
redis.call('ZREM', KEYS[2], id)
redis.call('HDEL', KEYS[3], id)
redis.call('HDEL', KEYS[4], id)
return 1
"#;

/// Renew a lease, only while the message is still leased.
/// KEYS: leases. ARGV: id, new expiry ms. Returns 1 renewed, 0 unknown.
pub(crate) const EXTEND: &str = r#"
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], ARGV[1])
  return 1
end
return 0
"#;

/// Housekeeping of one channel: expired leases and due retries go back in
/// front of the waiting list; in-flight ids without a lease (taken by a
/// queue process that died before leasing) get a grace lease.
/// KEYS: inflight, leases, delayed, waiting. ARGV: now ms, grace expiry ms.
/// Returns {requeued after lease expiry, retries made due}.
const REAP: &str = r#"
local now = ARGV[1]
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 500)
local requeued = 0
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[2], id)
  if redis.call('LREM', KEYS[1], 1, id) > 0 then
    redis.call('RPUSH', KEYS[4], id)
    requeued = requeued + 1
  end
end
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 500)
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[3], id)
  redis.call('RPUSH', KEYS[4], id)
end
local inflight = redis.call('LRANGE', KEYS[1], 0, 999)
for _, id in ipairs(inflight) do
  if not redis.call('ZSCORE', KEYS[2], id) then
    redis.call('ZADD', KEYS[2], 'NX', ARGV[2], id)
  end
end
return {requeued, #due}
"#;

/// Loaded scripts (EVALSHA with automatic reload on NOSCRIPT).
#[derive(Debug, Clone)]
pub(crate) struct Scripts {
    pub(crate) send: Script,
    pub(crate) lease: Script,
    pub(crate) ack: Script,
    pub(crate) nack: Script,
    pub(crate) respond: Script,
    pub(crate) extend: Script,
    pub(crate) reap: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            send: Script::new(SEND),
            lease: with_helpers(LEASE),
            ack: Script::new(ACK),
            nack: with_helpers(NACK),
            respond: Script::new(RESPOND),
            extend: Script::new(EXTEND),
            reap: Script::new(REAP),
        }
    }
}
