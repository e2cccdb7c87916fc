//! `ordershop-restarts`: how long each role of a running `ordershop local`
//! takes to serve again after a `kill -9`: from the kill until a new
//! process of the role answers the standard gRPC health check with
//! SERVING, which a role does only once its view has caught up with the
//! event store (the read model: its cache). The supervisor restarts the
//! role at once (its backoff forgets kills more than 10 s apart, and the
//! rounds are spaced so).
//!
//! Run it after a load run has filled the shop; the README's figures come
//! from `services/loadgen/bench/restarts.sh`.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use clap::Parser;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::stats::Samples;

#[derive(Debug, Parser)]
#[command(
    name = "ordershop-restarts",
    about = "Kills roles of a running `ordershop local` and times how long each takes to serve again"
)]
struct Args {
    /// The `--data-dir` of the running `ordershop local`.
    #[arg(long)]
    data_dir: PathBuf,
    /// Roles to restart, one after the other.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "customer,product,inventory,cart,order,billing,shipping,crm,read-model"
    )]
    roles: Vec<String>,
    /// Kills per role.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Pause between two kills of one role, so the supervisor's restart
    /// backoff starts afresh each time.
    #[arg(long, default_value_t = 11)]
    spacing_s: u64,
    /// Give up on a role after this long.
    #[arg(long, default_value_t = 600)]
    timeout_s: u64,
}

/// Entry point of the `ordershop-restarts` binary.
pub fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let runtime = tokio::runtime::Runtime::new().expect("a Tokio runtime");
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let run_dir = args.data_dir.join("run");
    let timeout = Duration::from_secs(args.timeout_s);
    // The report goes to stdout a row at a time (a role may take minutes);
    // logs go to stderr.
    line("| role | restarts | ready after, ms (each) | median ms |")?;
    line("|---|---:|---|---:|")?;
    for role in &args.roles {
        let addr = read(&run_dir.join(format!("{role}.grpc.addr")))?;
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
            .connect_timeout(Duration::from_secs(1));
        // The role must be serving before it is killed, or a start still
        // under way would be timed as a restart.
        let pid_file = run_dir.join(format!("{role}.pid"));
        let since = Instant::now();
        while !(pid_file.exists() && serving(&endpoint).await) {
            if since.elapsed() > timeout {
                bail!("{role} not serving after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut samples = Samples::default();
        let mut each = Vec::new();
        for round in 0..args.rounds {
            if round > 0 {
                tokio::time::sleep(Duration::from_secs(args.spacing_s)).await;
            }
            let pid = read(&pid_file)?;
            let killed = Instant::now();
            let status = std::process::Command::new("kill")
                .args(["-9", &pid])
                .status()
                .context("cannot run kill")?;
            if !status.success() {
                bail!("kill -9 {pid} ({role}) failed");
            }
            loop {
                if killed.elapsed() > timeout {
                    bail!("{role} not serving {timeout:?} after its kill");
                }
                let restarted = read(&pid_file).is_ok_and(|now| now != pid);
                if restarted && serving(&endpoint).await {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            samples.record(killed.elapsed());
            let ms = killed.elapsed().as_secs_f64() * 1000.0;
            each.push(format!("{ms:.0}"));
        }
        let median = samples.summary().p50_ms;
        line(&format!(
            "| {role} | {} | {} | {median:.0} |",
            args.rounds,
            each.join(", ")
        ))?;
    }
    Ok(())
}

fn line(text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()
}

fn read(path: &Path) -> anyhow::Result<String> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .trim()
        .to_owned())
}

/// One health check, bounded to a second.
async fn serving(endpoint: &tonic::transport::Endpoint) -> bool {
    let Ok(channel) = endpoint.connect().await else {
        return false;
    };
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    request.set_timeout(Duration::from_secs(1));
    match HealthClient::new(channel).check(request).await {
        Ok(reply) => reply.into_inner().status() == ServingStatus::Serving,
        Err(_) => false,
    }
}
