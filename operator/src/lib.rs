//! The OrderShop Kubernetes operator.
//!
//! - [`crd`]: the `OrderShop` resource (spec, status, CRD generation).
//! - [`children`]: the Kubernetes objects an OrderShop becomes (pure builders).
//! - [`reconcile`]: applies them with server-side apply, prunes, writes status and Events.
//! - [`autoscale`]: the seam the backlog autoscaler plugs into.
//! - [`metrics`], [`admin`]: Prometheus metrics, liveness and readiness over HTTP.
//! - [`leader`]: Lease-based leader election.
//! - [`cli`]: arguments and the `run` / `crdgen` entry points.

pub mod admin;
pub mod autoscale;
pub mod children;
pub mod cli;
pub mod crd;
pub mod dead_letters;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod reconcile;
pub mod run;
pub mod shop_tasks;
pub mod telemetry;

/// Field manager of every server-side apply the reconcile makes (children and status).
pub const FIELD_MANAGER: &str = "ordershop-operator";
