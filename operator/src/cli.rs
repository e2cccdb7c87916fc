//! Command line: `ordershop-operator run` (the controller) and
//! `ordershop-operator crdgen` (print the CRD).

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand};

use crate::run::RunError;
use crate::telemetry::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "ordershop-operator",
    version,
    about = "The OrderShop Kubernetes operator"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the operator against the cluster of the in-cluster config or KUBECONFIG.
    Run(RunArgs),
    /// Print the OrderShop CRD as YAML.
    Crdgen,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Address of the admin server (/metrics, /healthz, /readyz).
    #[arg(
        long,
        env = "ORDERSHOP_OPERATOR_ADMIN_LISTEN",
        default_value = "0.0.0.0:8080"
    )]
    pub admin_listen: SocketAddr,
    /// Reconcile OrderShops of this namespace only; all namespaces when unset.
    #[arg(long, env = "ORDERSHOP_OPERATOR_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// Namespace the operator runs in (its Lease lives there, and the Redis
    /// NetworkPolicies admit its pods); the client's default namespace when unset.
    #[arg(long, env = "ORDERSHOP_OPERATOR_NAMESPACE")]
    pub operator_namespace: Option<String>,
    /// Take part in leader election (required when running more than one replica).
    #[arg(long, env = "ORDERSHOP_OPERATOR_LEADER_ELECTION", default_value_t = true, action = ArgAction::Set)]
    pub leader_election: bool,
    /// Name of the leader Lease.
    #[arg(
        long,
        env = "ORDERSHOP_OPERATOR_LEASE_NAME",
        default_value = "ordershop-operator"
    )]
    pub lease_name: String,
    /// Seconds a leader's Lease stays valid after its last renewal.
    #[arg(long, env = "ORDERSHOP_OPERATOR_LEASE_DURATION", default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// Seconds before expiry at which the leader renews.
    #[arg(long, env = "ORDERSHOP_OPERATOR_LEASE_GRACE", default_value_t = 5)]
    pub lease_grace_seconds: u64,
    /// This replica's identity in the election and in Events (the pod name in a cluster).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Image tag of the OrderShop services when an OrderShop sets none.
    #[arg(long, env = "ORDERSHOP_OPERATOR_DEFAULT_IMAGE_TAG", default_value = env!("CARGO_PKG_VERSION"))]
    pub default_image_tag: String,
    /// OrderShops reconciled at the same time.
    #[arg(long, env = "ORDERSHOP_OPERATOR_CONCURRENCY", default_value_t = 8)]
    pub concurrency: u16,
    #[arg(
        long,
        env = "ORDERSHOP_OPERATOR_LOG_FORMAT",
        value_enum,
        default_value = "json"
    )]
    pub log_format: LogFormat,
}

impl RunArgs {
    pub fn lease_duration(&self) -> Duration {
        Duration::from_secs(self.lease_duration_seconds)
    }
    pub fn lease_grace(&self) -> Duration {
        Duration::from_secs(self.lease_grace_seconds)
    }
}

/// Errors of the command line entry points.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("generating the CRD: {0}")]
    Crd(#[from] serde_saphyr::SerializeError),
    #[error("writing to stdout: {0}")]
    Stdout(#[from] std::io::Error),
    #[error("starting the async runtime: {0}")]
    Runtime(std::io::Error),
}

impl Cli {
    /// Runs the chosen subcommand to completion.
    pub fn run(self) -> Result<(), CliError> {
        match self.command {
            Command::Crdgen => {
                let yaml = crate::crd::crd_yaml()?;
                std::io::stdout().lock().write_all(yaml.as_bytes())?;
                Ok(())
            }
            Command::Run(args) => {
                crate::telemetry::init(args.log_format);
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .map_err(CliError::Runtime)?;
                Ok(runtime.block_on(crate::run::run(args))?)
            }
        }
    }
}
