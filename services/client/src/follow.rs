//! Following topics: pages of new events pushed by the event store as they
//! are published (see `Follow` in the proto), for views and caches that keep
//! their own positions.

use ordershop_proto::eventstore::v1 as pb;
use tokio_util::sync::CancellationToken;

use crate::{Backoff, ClientError, EventStore, Recorded};

/// An open follow stream.
#[derive(Debug)]
pub struct Follow {
    stream: tonic::Streaming<pb::FollowPage>,
}

impl Follow {
    /// The next page: events of one topic, in stream order, after those of
    /// every earlier page of that topic. `None` when the server ended the
    /// stream (it is shutting down).
    pub async fn next_page(&mut self) -> Result<Option<Vec<Recorded>>, ClientError> {
        Ok(self
            .stream
            .message()
            .await?
            .map(|page| page.events.into_iter().map(Recorded::from).collect()))
    }
}

impl EventStore {
    /// Opens a stream of every event of the topics after the given
    /// positions (exclusive; empty = from the beginning), then of every new
    /// one.
    pub async fn follow(&self, from: &[(&str, String)]) -> Result<Follow, ClientError> {
        let request = pb::FollowRequest {
            topics: from
                .iter()
                .map(|(topic, after)| pb::FollowFrom {
                    topic: (*topic).to_owned(),
                    after: after.clone(),
                })
                .collect(),
        };
        let stream = self.client().follow(request).await?.into_inner();
        Ok(Follow { stream })
    }

    /// Follows `topics` until `cancel` fires, handing every page to
    /// `on_page`. A broken stream (event store restarted, network) is
    /// reopened with backoff after the positions `position` gives then, so
    /// the caller sees each event once as long as `position` reports the
    /// last entry it took of each topic.
    pub async fn follow_forever(
        &self,
        topics: &[&str],
        position: impl Fn(&str) -> String,
        mut on_page: impl FnMut(Vec<Recorded>),
        cancel: &CancellationToken,
    ) {
        let mut backoff = Backoff::default();
        while !cancel.is_cancelled() {
            let from: Vec<(&str, String)> = topics.iter().map(|t| (*t, position(t))).collect();
            let result = async {
                let mut follow = self.follow(&from).await?;
                loop {
                    match follow.next_page().await? {
                        Some(page) => {
                            backoff.reset();
                            on_page(page);
                        }
                        None => {
                            return Err::<std::convert::Infallible, _>(ClientError::Rpc(
                                tonic::Status::unavailable("follow stream ended by the server"),
                            ));
                        }
                    }
                }
            };
            // Dropping a follow in flight loses nothing: it only reads.
            let err: ClientError = tokio::select! {
                _ = cancel.cancelled() => return,
                Err(err) = result => err,
                else => return,
            };
            tracing::warn!(?topics, error = %err, "following the event store broke; reconnecting");
            if !backoff.pause(cancel).await {
                return;
            }
        }
    }
}
