//! Two counts kept in the one number Redis holds per pending message.
//!
//! A handler that refuses a message (the order is not ready yet, a
//! dependency is away) gets it again after a pause, for as long as it
//! takes: only a message that can never succeed is dead-lettered, and the
//! handler says so. A message that was delivered again and again without
//! any answer — its consumer crashed or hung each time — is a poison
//! message and is dead-lettered after a few such deliveries, so it cannot
//! take a consumer group down for good.
//!
//! Telling those apart needs two numbers per pending message, and Redis
//! already keeps one that costs nothing extra: a stream entry's delivery
//! counter (`XPENDING`, settable with `XCLAIM … RETRYCOUNT`) and the queue's
//! attempts field. A refusal rewrites it to `(refusals + 1) × STRIDE`, and
//! each delivery adds one, so `raw / STRIDE` counts refusals and
//! `raw % STRIDE` the deliveries since the last one. (The queue adds its
//! one when a lease runs out rather than when it is taken, so a message
//! answered at once never writes a counter; a lease reads it as one more.) Tools that show the
//! raw counter (`redis-cli XPENDING`) show e.g. 3000001: three refusals,
//! then one delivery.

use std::time::Duration;

/// What a handler's refusal of a delivery asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not now (too early, a dependency away): deliver it again after this.
    Retry { after: Duration },
    /// It can never be handled (unreadable, invalid): dead-letter it.
    Permanent,
}

impl Refusal {
    /// From the wire: `permanent`, else a retry after `retry_after_ms`.
    pub fn from_wire(permanent: bool, retry_after_ms: u32) -> Self {
        if permanent {
            Refusal::Permanent
        } else {
            Refusal::Retry {
                after: Duration::from_millis(retry_after_ms.into()),
            }
        }
    }
}

/// Dead letters kept per topic and per channel: the oldest go beyond this,
/// so a flood of bad messages cannot fill Redis.
pub const DEAD_LETTERS_KEPT: u64 = 10_000;

/// Far above any number of unanswered deliveries before dead-lettering.
pub const STRIDE: u64 = 1_000_000;

/// A pending message's delivery counter, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeliveryCount {
    /// How often a handler refused it (each time it was retried later).
    pub refusals: u64,
    /// Deliveries since the last refusal (or since it was first sent).
    pub unanswered: u64,
}

impl DeliveryCount {
    pub fn decode(raw: u64) -> Self {
        Self {
            refusals: raw / STRIDE,
            unanswered: raw % STRIDE,
        }
    }

    /// The raw counter to store when a handler refuses the delivery: the
    /// next delivery (which adds one) is then the first since the refusal.
    pub fn after_refusal(self) -> u64 {
        (self.refusals + 1) * STRIDE
    }

    /// Which delivery this is, counting every earlier one (1 for the first):
    /// what handlers see, and what their backoff grows with.
    pub fn attempt(self) -> u32 {
        u32::try_from(self.refusals + self.unanswered).unwrap_or(u32::MAX)
    }

    /// A poison message: delivered more than `max` times in a row without
    /// an answer.
    pub fn is_poison(self, max: u32) -> bool {
        self.unanswered > u64::from(max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_restart_the_unanswered_count_but_not_the_attempts() {
        let first = DeliveryCount::decode(1);
        assert_eq!((first.attempt(), first.is_poison(5)), (1, false));
        // Refused, then delivered again (the delivery adds one).
        let second = DeliveryCount::decode(first.after_refusal() + 1);
        assert_eq!(
            second,
            DeliveryCount {
                refusals: 1,
                unanswered: 1
            }
        );
        assert_eq!(second.attempt(), 2);
        // A hundred refusals later it is still not poison.
        let mut raw = 1;
        for _ in 0..100 {
            raw = DeliveryCount::decode(raw).after_refusal() + 1;
        }
        let late = DeliveryCount::decode(raw);
        assert_eq!((late.attempt(), late.is_poison(5)), (101, false));
        // Six deliveries in a row without an answer are.
        let crashed = DeliveryCount::decode(late.after_refusal() + 6);
        assert!(crashed.is_poison(5));
        assert_eq!(crashed.attempt(), 107);
    }

    #[test]
    fn counters_from_before_the_encoding_read_as_unanswered_deliveries() {
        assert_eq!(
            DeliveryCount::decode(3),
            DeliveryCount {
                refusals: 0,
                unanswered: 3
            }
        );
    }
}
