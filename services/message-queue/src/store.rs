use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use ordershop_metrics::families as metrics;
use ordershop_redis::{Redis, Refusal, delivery_count};
use ordershop_topology::{CHANNELS_SET, QueueKeys, Role};
use redis::AsyncCommands;
use tokio::time::Instant;

use crate::{
    Channels, Message, QueueConfig, QueueError, SendOutcome, model::Envelope, scripts::Scripts,
    validate,
};

/// Every Redis operation of the message queue.
#[derive(Debug, Clone)]
pub struct QueueStore {
    redis: Redis,
    scripts: Scripts,
    config: QueueConfig,
    /// Channels already registered in `queue:channels` by this process, so
    /// a send costs one round trip, not two.
    registered: Arc<Mutex<HashSet<String>>>,
    /// When housekeeping last swept the earlier releases' attempts hashes.
    last_sweep: Arc<Mutex<Option<Instant>>>,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl QueueStore {
    pub fn new(redis: Redis, config: QueueConfig) -> Self {
        Self {
            redis,
            scripts: Scripts::new(),
            config,
            registered: Arc::default(),
            last_sweep: Arc::default(),
        }
    }

    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    async fn register(&self, channel: &str) -> Result<(), QueueError> {
        if self.registered.lock().expect("lock").contains(channel) {
            return Ok(());
        }
        if self.config.channels == Channels::Topology && !Role::serves_channel(channel) {
            return Err(QueueError::InvalidArgument(format!(
                "no service of this deployment serves channel {channel:?}"
            )));
        }
        let mut conn = self.redis.conn();
        redis::cmd("SADD")
            .arg(CHANNELS_SET)
            .arg(channel)
            .query_async::<()>(&mut conn)
            .await?;
        self.registered
            .lock()
            .expect("lock")
            .insert(channel.to_owned());
        Ok(())
    }

    /// Enqueues a request. With an idempotency key seen within the window,
    /// returns the first message's id and enqueues nothing.
    pub async fn send(
        &self,
        channel: &str,
        payload: &str,
        idempotency_key: &str,
    ) -> Result<SendOutcome, QueueError> {
        self.enqueue(channel, payload, idempotency_key, Duration::ZERO)
            .await
    }

    /// [`Self::send`] for a caller that may retry for `retry_span` beyond
    /// the usual minute (a sync call retries for as long as it waits).
    async fn enqueue(
        &self,
        channel: &str,
        payload: &str,
        idempotency_key: &str,
        retry_span: Duration,
    ) -> Result<SendOutcome, QueueError> {
        validate::channel(channel)?;
        validate::payload(payload)?;
        validate::idempotency_key(idempotency_key)?;
        self.register(channel).await?;
        let keys = QueueKeys::new(channel);
        let id = uuid::Uuid::new_v4().to_string();
        let window = idempotency_window(&self.config, idempotency_key, retry_span);
        let keyed = !idempotency_key.is_empty();
        let now = now_ms();
        let envelope = serde_json::to_string(&Envelope {
            signal_reply: true,
            keep_reply_until_ms: if keyed {
                now.max(0) as u64 + window.as_millis() as u64
            } else {
                0
            },
            payload: payload.to_owned(),
            idempotency_key: idempotency_key.to_owned(),
            enqueued_at_ms: now,
            traceparent: ordershop_trace::current_traceparent(),
        })
        .map_err(|e| QueueError::Corrupt(e.to_string()))?;
        let idem_key = if keyed {
            format!("{}{idempotency_key}", keys.idempotency_prefix)
        } else {
            keys.messages.clone()
        };
        let mut conn = self.redis.conn();
        let (message_id, outcome): (String, u8) = self
            .scripts
            .send
            .key(&keys.waiting)
            .key(&keys.messages)
            .key(&idem_key)
            .arg(&id)
            .arg(&envelope)
            .arg(window.as_millis() as u64)
            .arg(u8::from(keyed))
            .arg(fingerprint(payload))
            .arg(self.config.max_waiting)
            .invoke_async(&mut conn)
            .await?;
        if outcome == 3 {
            return Err(QueueError::Full {
                channel: channel.to_owned(),
                waiting: self.config.max_waiting,
            });
        }
        if outcome == 2 {
            return Err(QueueError::KeyReused {
                key: idempotency_key.to_owned(),
                message_id,
            });
        }
        Ok(SendOutcome {
            message_id,
            duplicate: outcome == 1,
        })
    }

    /// Waits up to `wait` for a request and leases it for `lease`.
    pub async fn receive(
        &self,
        channel: &str,
        wait: Duration,
        lease: Duration,
    ) -> Result<Option<Message>, QueueError> {
        validate::channel(channel)?;
        self.register(channel).await?;
        let keys = QueueKeys::new(channel);
        let deadline = Instant::now() + wait;
        loop {
            let Some(blocking) = self.redis.blocking_until(deadline).await else {
                return Ok(None);
            };
            let mut blocking = blocking?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            // BLMOVE takes seconds as a float; 0 would block forever.
            let timeout = remaining.as_secs_f64().max(0.001);
            let mut cmd = redis::cmd("BLMOVE");
            cmd.arg(&keys.waiting)
                .arg(&keys.inflight)
                .arg("RIGHT")
                .arg("LEFT")
                .arg(timeout);
            let id: Option<String> = blocking.query(&cmd).await?;
            drop(blocking);
            let Some(id) = id else { return Ok(None) };
            let expiry = now_ms() + lease.as_millis() as i64;
            let mut conn = self.redis.conn();
            let (body, attempt): (Option<String>, u32) = self
                .scripts
                .lease
                .key(&keys.inflight)
                .key(&keys.leases)
                .key(&keys.messages)
                .arg(&id)
                .arg(expiry)
                .arg(delivery_count::STRIDE)
                .invoke_async(&mut conn)
                .await?;
            match body {
                Some(body) => {
                    if attempt > 1 {
                        metrics::QUEUE_REDELIVERIES
                            .get_or_create(&metrics::channel(channel))
                            .inc();
                    }
                    let envelope: Envelope = serde_json::from_str(&body)
                        .map_err(|e| QueueError::Corrupt(format!("{id}: {e}")))?;
                    return Ok(Some(Message {
                        id,
                        channel: channel.to_owned(),
                        payload: envelope.payload,
                        attempt,
                        idempotency_key: envelope.idempotency_key,
                        enqueued_at_ms: envelope.enqueued_at_ms,
                        traceparent: envelope.traceparent,
                    }));
                }
                None => {
                    // Finished (acked, answered, dead-lettered) between
                    // the move and the lease: nothing to deliver.
                    tracing::debug!(channel, id, "message gone before its lease");
                    if Instant::now() >= deadline {
                        return Ok(None);
                    }
                }
            }
        }
    }

    pub async fn ack(&self, channel: &str, id: &str) -> Result<(), QueueError> {
        validate::channel(channel)?;
        validate::message_id(id)?;
        let keys = QueueKeys::new(channel);
        let mut conn = self.redis.conn();
        let found: u32 = self
            .scripts
            .ack
            .key(&keys.inflight)
            .key(&keys.leases)
            .key(&keys.messages)
            .key(&keys.waiting)
            .key(&keys.delayed)
            .arg(id)
            .invoke_async(&mut conn)
            .await?;
        if found == 0 {
            return Err(QueueError::NotFound(format!(
                "message {id} is not pending on {channel}"
            )));
        }
        Ok(())
    }

    /// Refuses a leased message: a permanent refusal dead-letters it, any
    /// other retries it after the pause, however often that takes.
    /// Returns true when the message was dead-lettered.
    pub async fn nack(
        &self,
        channel: &str,
        id: &str,
        refusal: Refusal,
        reason: &str,
    ) -> Result<bool, QueueError> {
        validate::channel(channel)?;
        validate::message_id(id)?;
        let keys = QueueKeys::new(channel);
        let (retry_at, permanent) = match refusal {
            Refusal::Permanent => (0, true),
            Refusal::Retry { after } if after.is_zero() => (0, false),
            Refusal::Retry { after } => (now_ms() + after.as_millis() as i64, false),
        };
        let mut conn = self.redis.conn();
        let outcome: i32 = self
            .scripts
            .nack
            .key(&keys.inflight)
            .key(&keys.leases)
            .key(&keys.delayed)
            .key(&keys.waiting)
            .key(&keys.dead)
            .key(&keys.dead_reasons)
            .key(&keys.messages)
            .arg(id)
            .arg(retry_at)
            .arg(u8::from(permanent))
            .arg(delivery_count::STRIDE)
            .arg(reason.chars().take(MAX_REASON_CHARS).collect::<String>())
            .arg(delivery_count::DEAD_LETTERS_KEPT)
            .invoke_async(&mut conn)
            .await?;
        match outcome {
            -1 => Err(QueueError::NotFound(format!(
                "message {id} is not in flight on {channel}"
            ))),
            1 => {
                metrics::QUEUE_DEAD_LETTERED
                    .get_or_create(&metrics::dead_lettered(channel, "refused"))
                    .inc();
                tracing::warn!(channel, id, ?reason, "message dead-lettered");
                Ok(true)
            }
            _ => {
                metrics::QUEUE_RETRIES
                    .get_or_create(&metrics::channel(channel))
                    .inc();
                tracing::debug!(channel, id, ?reason, "message will be retried");
                Ok(false)
            }
        }
    }

    pub async fn respond(&self, channel: &str, id: &str, payload: &str) -> Result<(), QueueError> {
        validate::channel(channel)?;
        validate::message_id(id)?;
        validate::payload(payload)?;
        let keys = QueueKeys::new(channel);
        let mut conn = self.redis.conn();
        let outcome: i32 = self
            .scripts
            .respond
            .key(&keys.inflight)
            .key(&keys.leases)
            .key(&keys.messages)
            .key(format!("{}{id}", keys.reply_prefix))
            .key(format!("{}{id}", keys.signal_prefix))
            .arg(id)
            .arg(payload)
            .arg(self.config.reply_ttl.as_millis() as u64)
            .arg(now_ms())
            .invoke_async(&mut conn)
            .await?;
        if outcome == 0 {
            return Err(QueueError::NotFound(format!(
                "message {id} is not awaiting an answer on {channel}"
            )));
        }
        Ok(())
    }

    /// Waits for the response to message `id`. Waiting rotates the signal
    /// list onto itself (BLMOVE src src) instead of popping it, so a retried
    /// caller and the original can both wait for the same response; the
    /// element it returns is the response (see `scripts::RESPOND`).
    pub async fn await_response(
        &self,
        channel: &str,
        id: &str,
        timeout: Duration,
    ) -> Result<String, QueueError> {
        validate::channel(channel)?;
        validate::message_id(id)?;
        let keys = QueueKeys::new(channel);
        let signal_key = format!("{}{id}", keys.signal_prefix);
        // No look for a stored reply first: the responder pushes the reply
        // onto the signal list, so an answered message's wait returns at
        // once.
        let deadline = Instant::now() + timeout;
        loop {
            let Some(blocking) = self.redis.blocking_until(deadline).await else {
                return Err(QueueError::Timeout(timeout));
            };
            let mut blocking = blocking?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(QueueError::Timeout(timeout));
            }
            let mut cmd = redis::cmd("BLMOVE");
            cmd.arg(&signal_key)
                .arg(&signal_key)
                .arg("RIGHT")
                .arg("LEFT")
                .arg(remaining.as_secs_f64().max(0.001));
            let signal: Option<String> = blocking.query(&cmd).await?;
            drop(blocking);
            match signal.as_deref().map(Signal::parse) {
                None => {}
                Some(Signal::Reply(reply)) => return Ok(reply.to_owned()),
                Some(Signal::Stored) => {
                    let reply_key = format!("{}{id}", keys.reply_prefix);
                    let mut conn = self.redis.conn();
                    let reply: Option<String> = conn.get(&reply_key).await?;
                    if let Some(reply) = reply {
                        return Ok(reply);
                    }
                }
            }
        }
    }

    /// Send, then wait for the response.
    pub async fn call(
        &self,
        channel: &str,
        payload: &str,
        idempotency_key: &str,
        timeout: Duration,
    ) -> Result<(String, String), QueueError> {
        let sent = self
            .enqueue(channel, payload, idempotency_key, timeout)
            .await?;
        let reply = self
            .await_response(channel, &sent.message_id, timeout)
            .await?;
        Ok((sent.message_id, reply))
    }

    pub async fn extend_lease(
        &self,
        channel: &str,
        id: &str,
        lease: Duration,
    ) -> Result<(), QueueError> {
        validate::channel(channel)?;
        validate::message_id(id)?;
        let keys = QueueKeys::new(channel);
        let mut conn = self.redis.conn();
        let renewed: u8 = self
            .scripts
            .extend
            .key(&keys.leases)
            .arg(id)
            .arg(now_ms() + lease.as_millis() as i64)
            .invoke_async(&mut conn)
            .await?;
        if renewed == 0 {
            return Err(QueueError::NotFound(format!(
                "message {id} holds no lease on {channel}"
            )));
        }
        Ok(())
    }

    /// One housekeeping pass over every known channel, in one pipeline.
    pub async fn reap(&self) -> Result<Reaped, QueueError> {
        let mut conn = self.redis.conn();
        let channels: Vec<String> = redis::cmd("SMEMBERS")
            .arg(CHANNELS_SET)
            .query_async(&mut conn)
            .await?;
        if channels.is_empty() {
            return Ok(Reaped::default());
        }
        let now = now_ms();
        let grace = now + self.config.orphan_grace.as_millis() as i64;
        let sweep = {
            let mut last = self.last_sweep.lock().expect("lock");
            let due = last.is_none_or(|at| at.elapsed() >= self.config.sweep_interval);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        let mut pipe = redis::pipe();
        for channel in &channels {
            let keys = QueueKeys::new(channel);
            pipe.invoke_script(
                self.scripts
                    .reap
                    .key(&keys.inflight)
                    .key(&keys.leases)
                    .key(&keys.delayed)
                    .key(&keys.waiting)
                    .key(&keys.messages)
                    .key(&keys.dead)
                    .key(&keys.dead_reasons)
                    .key(&keys.attempts)
                    .arg(now)
                    .arg(grace)
                    .arg(self.config.max_attempts)
                    .arg(delivery_count::STRIDE)
                    .arg(delivery_count::DEAD_LETTERS_KEPT)
                    .arg(u8::from(sweep)),
            );
        }
        // A script in a pipeline is not reloaded by itself; load it only when
        // Redis says it lacks it (after a restart), not on every pass.
        let results: Vec<(u64, u64, u64)> = match pipe.query_async(&mut conn).await {
            Err(err) if err.code() == Some("NOSCRIPT") => {
                self.scripts.reap.load_async(&mut conn).await?;
                pipe.query_async(&mut conn).await?
            }
            other => other?,
        };
        let mut total = Reaped::default();
        for (channel, (requeued, due, dead)) in channels.iter().zip(results) {
            if dead > 0 {
                metrics::QUEUE_DEAD_LETTERED
                    .get_or_create(&metrics::dead_lettered(channel, "poison"))
                    .inc_by(dead);
                tracing::warn!(
                    channel,
                    dead,
                    max_unanswered = self.config.max_attempts,
                    "message(s) dead-lettered: leased too often without an answer (their consumer crashed or hung each time)"
                );
            }
            total.requeued += requeued;
            total.due += due;
            total.dead_lettered += dead;
        }
        Ok(total)
    }
}

/// What one housekeeping pass did, over every channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reaped {
    /// Messages put back after their lease ran out.
    pub requeued: u64,
    /// Retries whose pause was over, put back.
    pub due: u64,
    /// Messages dead-lettered because their leases ran out too often.
    pub dead_lettered: u64,
}

/// What a waiter finds on a message's signal list.
#[derive(Debug, PartialEq, Eq)]
enum Signal<'a> {
    /// The response itself (pushed with a leading `=`).
    Reply(&'a str),
    /// Earlier releases' `1`: the response is under the reply key.
    Stored,
}

impl<'a> Signal<'a> {
    fn parse(element: &'a str) -> Self {
        match element.strip_prefix('=') {
            Some(reply) => Self::Reply(reply),
            None => Self::Stored,
        }
    }
}

/// A dead letter's reason is for people; a handler's error text is cut here.
const MAX_REASON_CHARS: usize = 512;

/// What a reused idempotency key is compared by: SHA-1 of the payload
/// (collisions do not matter here; it only tells a retry from a mistake).
fn fingerprint(payload: &str) -> String {
    sha1_smol::Sha1::from(payload).digest().to_string()
}

/// Keys the client library makes for its own retries (`auto:`) need only
/// outlive those retries: a minute (an async send retries for seconds), plus
/// however long a sync call keeps retrying while it waits for its answer.
/// Keeping them for the whole window would cost a key per message for ten
/// minutes.
fn idempotency_window(config: &QueueConfig, key: &str, retry_span: Duration) -> Duration {
    if key.starts_with("auto:") {
        config.idempotency_window.min(AUTO_KEY_MARGIN + retry_span)
    } else {
        config.idempotency_window
    }
}

/// How long an `auto:` key outlives the retries it exists for.
const AUTO_KEY_MARGIN: Duration = Duration::from_secs(60);

#[cfg(test)]
mod window_tests {
    use super::*;

    #[test]
    fn made_keys_outlive_a_long_call_but_not_the_window() {
        let config = QueueConfig::default();
        let minute = Duration::from_secs(60);
        assert_eq!(
            idempotency_window(&config, "auto:x", Duration::ZERO),
            minute
        );
        // A five-minute call retries for five minutes: its key must stay.
        let long = Duration::from_secs(300);
        assert_eq!(idempotency_window(&config, "auto:x", long), long + minute);
        // Caller keys keep the whole window, whatever the call.
        assert_eq!(
            idempotency_window(&config, "mine", Duration::ZERO),
            config.idempotency_window
        );
        // Never longer than the configured window.
        let short = QueueConfig {
            idempotency_window: minute / 2,
            ..QueueConfig::default()
        };
        assert_eq!(idempotency_window(&short, "auto:x", long), minute / 2);
    }
}

#[cfg(test)]
mod signal_tests {
    use super::Signal;

    #[test]
    fn a_marked_element_is_the_reply_and_anything_else_points_to_the_reply_key() {
        assert_eq!(Signal::parse("={\"a\":1}"), Signal::Reply("{\"a\":1}"));
        // A reply that is itself "1" is told from the old signal by the mark.
        assert_eq!(Signal::parse("=1"), Signal::Reply("1"));
        assert_eq!(Signal::parse("="), Signal::Reply(""));
        assert_eq!(Signal::parse("1"), Signal::Stored);
    }
}
