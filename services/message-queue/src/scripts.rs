//! The queue's multi-key steps, each one atomic Lua script over keys that
//! share the channel's hash tag.

use ordershop_topology::ATTEMPTS_FIELD_SUFFIX;
use redis::Script;

/// KEYS: waiting, messages, idempotency key (or the messages key again when
/// there is none). ARGV: id, envelope, idempotency ttl ms, has key (0/1),
/// payload fingerprint, most waiting messages (0: no bound). The key
/// remembers "<id> <fingerprint>"; it is claimed with one `SET NX GET`
/// (Redis ≥ 7.0), which answers the earlier message's value when the key
/// was taken, so a send reads and claims its key in one command.
/// Returns {message id, 0 new | 1 duplicate | 2 key reused for another
/// payload | 3 the channel is full}. A duplicate is answered even when the
/// channel is full: it adds nothing. The bound reads the length LPUSH
/// returns and takes the message back out when it is one too many, so a
/// send costs no extra command unless the channel is full.
pub(crate) const SEND: &str = r#"
if ARGV[4] == '1' then
  local existing = redis.call('SET', KEYS[3], ARGV[1] .. ' ' .. ARGV[5], 'NX', 'PX', ARGV[3], 'GET')
  if existing then
    local id, fingerprint = string.match(existing, '^(%S+) ?(%S*)$')
    if fingerprint ~= '' and fingerprint ~= ARGV[5] then return {id, 2} end
    return {id, 1}
  end
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

/// Functions every script but SEND and EXTEND starts with
/// (`with_helpers`); `ATTEMPTS_SUFFIX` is filled in from the topology.
const HELPERS: &str = r#"
-- The field of the messages hash holding `id`'s delivery counter.
local function attempts_of(id) return id .. 'ATTEMPTS_SUFFIX' end
-- Dead-letters `id` with `reason`, keeping the newest `kept` (the oldest
-- beyond is forgotten, body and all).
local function dead_letter(dead, reasons, messages, id, reason, kept)
  redis.call('LPUSH', dead, id)
  redis.call('HSET', reasons, id, reason)
  if redis.call('LLEN', dead) > tonumber(kept) then
    local oldest = redis.call('RPOP', dead)
    redis.call('HDEL', messages, oldest, attempts_of(oldest))
    redis.call('HDEL', reasons, oldest)
  end
end
-- Records a refusal in the delivery counter: refusals x stride, leases
-- run out since then start over (see ordershop_redis::delivery_count).
local function record_refusal(messages, id, stride)
  local n = tonumber(redis.call('HGET', messages, attempts_of(id)) or '0')
  redis.call('HSET', messages, attempts_of(id), string.format('%d', (math.floor(n / stride) + 1) * stride))
end
"#;

/// A script preceded by [`HELPERS`].
fn with_helpers(body: &str) -> Script {
    let helpers = HELPERS.replace("ATTEMPTS_SUFFIX", ATTEMPTS_FIELD_SUFFIX);
    Script::new(&format!("{helpers}{body}"))
}

/// After BLMOVE put `id` in flight: lease it. The delivery counter is read
/// in the same command as the body and not written: it changes only when
/// a lease runs out (REAP) or a handler refuses (NACK), so a message
/// answered at its first delivery never has one, and finishing it is one
/// `HDEL`. Poison messages (leases run out again and again) are
/// dead-lettered by REAP.
/// KEYS: inflight, leases, messages. ARGV: id, lease expiry ms, stride.
/// Returns {envelope, attempt} or {false, 0} when it has no body.
pub(crate) const LEASE: &str = r#"
local id = ARGV[1]
local found = redis.call('HMGET', KEYS[3], id, attempts_of(id))
local body = found[1]
if not body then
  redis.call('LREM', KEYS[1], 1, id)
  redis.call('ZREM', KEYS[2], id)
  return {false, 0}
end
-- This delivery counts as one more since the last refusal.
local n = tonumber(found[2] or '0') + 1
local stride = tonumber(ARGV[3])
local attempt = math.floor(n / stride) + n % stride
redis.call('ZADD', KEYS[2], ARGV[2], id)
return {body, attempt}
"#;

/// Done: forget the message wherever it is (a late ack after the lease ran
/// out still prevents a second run if it was not redelivered yet).
/// KEYS: inflight, leases, messages, waiting, delayed. ARGV: id.
/// Returns how many places held it (0 = unknown id).
pub(crate) const ACK: &str = r#"
local id = ARGV[1]
-- A message is in one place at a time, and nearly always in flight when it
-- is acked: look elsewhere only when it is not.
local found = redis.call('LREM', KEYS[1], 1, id)
if found == 0 then
  found = redis.call('LREM', KEYS[4], 1, id) + redis.call('ZREM', KEYS[5], id)
end
redis.call('ZREM', KEYS[2], id)
redis.call('HDEL', KEYS[3], id, attempts_of(id))
return found
"#;

/// The handler failed: dead-letter a permanent failure; retry any other
/// (now, in front of the waiting list, or later through the delayed set)
/// however often it takes, recording the refusal in the delivery counter.
/// KEYS: inflight, leases, delayed, waiting, dead, dead reasons, messages.
/// ARGV: id, retry at ms (0 = now), permanent (0/1), stride, reason, dead
/// letters kept.
/// Returns -1 unknown, 0 retry, 1 dead.
pub(crate) const NACK: &str = r#"
local id = ARGV[1]
local stride = tonumber(ARGV[4])
if redis.call('LREM', KEYS[1], 1, id) == 0 then
  -- Its lease ran out while the handler worked and it was put back: the
  -- refusal still counts, or a handler slower than the lease would make
  -- the message look poison.
  if ARGV[3] ~= '1' and redis.call('HEXISTS', KEYS[7], id) == 1 then
    record_refusal(KEYS[7], id, stride)
  end
  return -1
end
redis.call('ZREM', KEYS[2], id)
if ARGV[3] == '1' then
  -- The refused delivery counts, so the dead letter tells how many there were.
  redis.call('HINCRBY', KEYS[7], attempts_of(id), 1)
  dead_letter(KEYS[5], KEYS[6], KEYS[7], id, ARGV[5], ARGV[6])
  return 1
end
record_refusal(KEYS[7], id, stride)
if ARGV[2] == '0' then
  redis.call('RPUSH', KEYS[4], id)
else
  redis.call('ZADD', KEYS[3], ARGV[2], id)
end
return 0
"#;

/// Store the response for the caller and finish the message. The response
/// is pushed, marked with a leading `=`, onto the message's signal list,
/// which waiters rotate onto itself (`BLMOVE src src`): the wait returns
/// the response itself, with no key of its own to write and read. A
/// message sent by an earlier release (no `"signal_reply":true` at the
/// head of its envelope) is awaited by that release, which reads the reply
/// key when the list says `1`: it is answered that way. The list (and the
/// key) live `reply ttl`, or longer when the envelope asks to keep the
/// reply as long as its idempotency key (`keep_reply_until_ms`).
/// Only a pending message can be answered (a reply stored for an id that
/// is not, or not yet, a message would be taken by a later caller for the
/// real one); answering one already answered is a retry and changes
/// nothing. Who may answer is the gRPC layer's check: only the role that
/// serves the channel.
/// KEYS: inflight, leases, messages, reply (earlier releases), signal.
/// ARGV: id, payload, reply ttl ms, now (unix ms, the queue process's
/// clock, the one `keep_reply_until_ms` was set by).
/// Returns 1 answered, 0 not awaiting an answer, 2 answered before.
pub(crate) const RESPOND: &str = r#"
local id = ARGV[1]
local ttl = tonumber(ARGV[3])
local body = redis.call('HGET', KEYS[3], id)
if not body then
  if redis.call('EXISTS', KEYS[5], KEYS[4]) > 0 then return 2 end
  return 0
end
local head = '{"signal_reply":true,'
local on_signal = string.sub(body, 1, #head) == head
if on_signal then body = '{' .. string.sub(body, #head + 1) end
do
  local keep = tonumber(string.match(body, '^{"keep_reply_until_ms":(%d+)') or '0')
  local left = keep - tonumber(ARGV[4])
  if left > ttl then ttl = left end
end
if on_signal then
  redis.call('RPUSH', KEYS[5], '=' .. ARGV[2])
else
  redis.call('SET', KEYS[4], ARGV[2], 'PX', ttl)
  redis.call('RPUSH', KEYS[5], '1')
end
redis.call('PEXPIRE', KEYS[5], ttl)
redis.call('LREM', KEYS[1], 1, id)
redis.call('ZREM', KEYS[2], id)
redis.call('HDEL', KEYS[3], id, attempts_of(id))
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

/// Housekeeping of one channel: expired leases count in the delivery
/// counter and go back in front of the waiting list, or are dead-lettered
/// when that makes more than the most unanswered deliveries (poison: its
/// consumer crashed or hung each time); due retries go back too; in-flight
/// ids without a lease (taken by a queue process that died before
/// leasing) get a grace lease; and a few fields of the earlier releases'
/// attempts hash whose message is gone are removed, until it is empty.
/// KEYS: inflight, leases, delayed, waiting, messages, dead, dead reasons,
/// earlier releases' attempts. ARGV: now ms, grace expiry ms, most
/// unanswered deliveries, stride, dead letters kept, sweep the earlier
/// releases' attempts hash (1/0: only now and then, it is nearly always
/// gone).
/// Returns {requeued after lease expiry, retries made due, dead-lettered}.
const REAP: &str = r#"
local now = ARGV[1]
local most, stride = tonumber(ARGV[3]), tonumber(ARGV[4])
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 500)
local requeued, dead = 0, 0
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[2], id)
  if redis.call('LREM', KEYS[1], 1, id) > 0 then
    local n = redis.call('HINCRBY', KEYS[5], attempts_of(id), 1)
    local unanswered = n % stride
    if unanswered >= most then
      dead_letter(KEYS[6], KEYS[7], KEYS[5], id, 'leased ' .. unanswered ..
        ' times in a row without an answer (its consumer crashed or hung each time)', ARGV[5])
      dead = dead + 1
    else
      redis.call('RPUSH', KEYS[4], id)
      requeued = requeued + 1
    end
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
if ARGV[6] == '1' and redis.call('EXISTS', KEYS[8]) == 1 then
  local page = redis.call('HSCAN', KEYS[8], 0, 'COUNT', 100)[2]
  for i = 1, #page, 2 do
    if redis.call('HEXISTS', KEYS[5], page[i]) == 0 then redis.call('HDEL', KEYS[8], page[i]) end
  end
end
return {requeued, #due, dead}
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
            ack: with_helpers(ACK),
            nack: with_helpers(NACK),
            respond: with_helpers(RESPOND),
            extend: Script::new(EXTEND),
            reap: with_helpers(REAP),
        }
    }
}
