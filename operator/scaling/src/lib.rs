//! Backlog measurement on Redis and the pure scaling decision of the
//! OrderShop operator.
//!
//! Three steps, each its own module, wired by the operator's autoscaler:
//!
//! 1. **Groups** ([`ensure_groups`]): before consumers start, create every
//!    consumer group the topology declares (`XGROUP CREATE events:<topic>
//!    <service> 0 MKSTREAM`; an existing group is left alone). Again for the
//!    groups a measurement reports missing ([`Measurement::missing_groups`],
//!    [`create_groups`]).
//! 2. **Measure** ([`measure_all`]): one pipelined round trip reads, for
//!    every consumer role, the lag and pending count of each of its groups
//!    (`XINFO GROUPS`) and the waiting, in-flight and delayed lengths of
//!    each of its queue channels; a second round trip only counts the lags
//!    Redis reports as nil. Which streams and channels a role consumes comes
//!    from [`ordershop_topology::Role`], never from a copy. The result is a
//!    [`Backlog`] per role, part by part; [`Backlog::observation`] sums it
//!    into an [`Observation`]. A Redis that cannot be read is a
//!    [`MeasureError`]; `Sample::from(&error)` turns it into the input that
//!    makes the decision hold.
//! 3. **Decide** ([`decide`]): a pure function of a [`Policy`], the
//!    [`ScalerState`] kept across polls, a [`Sample`], the current replicas
//!    and the time ([`UnixMillis`], passed in). It returns a [`Decision`] with
//!    the replicas to run, a [`Cause`] and a reason with its numbers, and
//!    updates the state, which is serde data to keep in the custom resource's
//!    status so a restarted operator resumes mid-window.
//!
//! ```no_run
//! # async fn poll(mut conn: redis::aio::ConnectionManager) -> Result<(), Box<dyn std::error::Error>> {
//! use ordershop_scaling::{
//!     MeasureOptions, Policy, Sample, ScalerState, UnixMillis, decide, ensure_groups, measure_all,
//! };
//! use ordershop_topology::Role;
//!
//! let consumers: Vec<Role> = Role::ALL.into_iter().filter(|r| r.is_consumer()).collect();
//! ensure_groups(&mut conn, &consumers).await?;
//!
//! let policy = Policy::default();
//! let mut state = ScalerState::default(); // or read back from the status
//! let measured = measure_all(&mut conn, &consumers, &MeasureOptions::default()).await;
//! let now = UnixMillis::from_system_time(std::time::SystemTime::now());
//! let current = 2; // the Deployment's spec.replicas
//! let sample = match &measured {
//!     Ok(measurement) => measurement.sample(Role::Order),
//!     Err(error) => Sample::from(error),
//! };
//! let decision = decide(&policy, &mut state, &sample, current, now);
//! if decision.should_apply(current) {
//!     // scale the Deployment to decision.desired
//! }
//! # Ok(()) }
//! ```
//!
//! The decision's rules are listed in [`decision`]; the cost of a poll in
//! commands and round trips in [`measure`].

mod backlog;
pub mod decision;
mod groups;
pub mod measure;
mod observation;
mod reply;
mod time;

pub use backlog::{
    Backlog, ChannelBacklog, ChannelState, GroupBacklog, Lag, StreamBacklog, StreamState,
};
pub use decision::{
    Cause, Change, Decision, Policy, PolicyError, Recommendation, ScalerState, decide,
};
pub use groups::{
    EnsuredGroup, GroupError, GroupOutcome, GroupRef, consumer_groups, create_groups, ensure_groups,
};
pub use measure::{Kinds, MeasureError, MeasureOptions, Measurement, PollCost, measure_all};
pub use observation::{Observation, Sample};
pub use ordershop_topology::EntryId;
pub use time::UnixMillis;
