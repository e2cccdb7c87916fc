use std::{future::Future, time::Duration};

use tokio_util::sync::CancellationToken;

/// Exponential backoff with jitter-free doubling between `min` and `max`.
/// Deterministic on purpose: tests and logs stay readable, and callers are
/// few enough that synchronized retries are not a concern.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_millis(20), Duration::from_secs(2))
    }
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            next: min,
            min,
            max,
        }
    }

    /// The pause before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(self.max);
        now
    }

    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

impl Backoff {
    /// Sleeps for the next delay; `false` when `cancel` fired first.
    pub async fn pause(&mut self, cancel: &CancellationToken) -> bool {
        let pause = self.next_delay();
        tokio::select! {
            _ = cancel.cancelled() => false,
            _ = tokio::time::sleep(pause) => true,
        }
    }
}

/// Runs `attempt` until it succeeds, logging each failure as `what` and
/// backing off between tries; `None` when `cancel` fires first. For start-up
/// steps that have nothing better to do than wait for a dependency.
pub async fn retry_until_cancelled<T, E, Fut>(
    cancel: &CancellationToken,
    what: &str,
    mut attempt: impl FnMut() -> Fut,
) -> Option<T>
where
    E: std::fmt::Display,
    Fut: Future<Output = Result<T, E>>,
{
    let mut backoff = Backoff::default();
    loop {
        let outcome = tokio::select! {
            _ = cancel.cancelled() => return None,
            outcome = attempt() => outcome,
        };
        match outcome {
            Ok(value) => return Some(value),
            Err(err) => {
                tracing::warn!(error = %err, "{what} failed; retrying");
                if !backoff.pause(cancel).await {
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn retries_until_an_attempt_succeeds() {
        let tries = AtomicU32::new(0);
        let value = retry_until_cancelled(&CancellationToken::new(), "test", || async {
            match tries.fetch_add(1, Ordering::SeqCst) {
                0..=2 => Err("not yet"),
                n => Ok(n),
            }
        })
        .await;
        assert_eq!(value, Some(3));
    }

    #[tokio::test]
    async fn gives_up_when_cancelled() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let value: Option<()> =
            retry_until_cancelled(&cancel, "test", || async { Err("never") }).await;
        assert_eq!(value, None);
        assert!(!Backoff::default().pause(&cancel).await);
    }
}
