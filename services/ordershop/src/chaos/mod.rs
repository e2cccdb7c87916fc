//! `ordershop chaos`: order-flow load against a shop of its own while its
//! parts are killed, paused, restarted and cut off, then an audit of
//! everything the shop accepted. Loopback only and bounded: it starts its
//! own Redis and `ordershop local` on free ports in a fresh folder, stops
//! them when done, and exits non-zero when a check fails.
//!
//! | module | what |
//! |---|---|
//! | `target` | the shop under test: Redis + `ordershop local` |
//! | `faults` | the seeded fault plan and carrying it out |
//! | `audit` | the event streams read back and checked |
//! | `report` | checks, recovery times, Markdown or JSON |

mod audit;
mod faults;
mod report;
mod target;

use std::{io::Write as _, path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use ordershop_loadgen::{
    api::{LoadOptions, run_load},
    cli::parse_duration,
};
use tokio::time::Instant;

use crate::local::redis_server::AppendFsync;

use self::{
    report::{Format, Report},
    target::{Leases, ShopUnderTest},
};

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ChaosArgs {
    /// How long clients start new flows while faults are injected.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    duration: Duration,
    /// Concurrent clients running full order flows.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Pause between two `kill -9`s of a random role (0 kills none).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    kill_every: Duration,
    /// The queue's lease and the event store's claim time in the shop under
    /// test; the event store and the queue are paused for longer than that.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    lease: Duration,
    /// Redis' appendfsync in the shop under test. The audit counts every
    /// acknowledged write, and Redis is killed once: only `always` keeps
    /// them all. With `everysec` Redis may postpone writing the append-only
    /// file while a slow fsync runs (up to 2 s) yet still answer, so a kill
    /// then loses acknowledged writes: the audit shows what that costs.
    #[arg(long, value_enum, default_value_t = AppendFsync::Always)]
    redis_appendfsync: AppendFsync,
    /// Seed of the fault plan and of the flows' choices; the default takes
    /// the clock (the report prints it, to replay a run).
    #[arg(long)]
    seed: Option<u64>,
    /// Folder of the shop under test (Redis data, logs); a fresh one under
    /// the temporary directory by default, removed after a passing run.
    #[arg(long)]
    dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Markdown)]
    format: Format,
}

/// How long a client retries a failed call: past the longest fault.
const RETRY_FOR: Duration = Duration::from_secs(60);

/// How long the sagas may take to finish after the load stops.
const SETTLE: Duration = Duration::from_secs(60);

pub(crate) async fn run(args: ChaosArgs) -> anyhow::Result<()> {
    if args.clients == 0 || args.duration.is_zero() || args.lease.is_zero() {
        bail!("--clients, --duration and --lease must be above zero");
    }
    let seed = args.seed.unwrap_or_else(clock_seed);
    let (dir, owned_dir) = match &args.dir {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!("ordershop-chaos-{}", std::process::id())),
            true,
        ),
    };
    let leases = Leases {
        lease: args.lease,
        claim_idle: args.lease + Duration::from_secs(1),
    };
    let pause = leases.claim_idle + Duration::from_secs(1);
    let plan = faults::plan(args.duration, args.kill_every, pause, seed);

    let mut shop = ShopUnderTest::start(&dir, leases, args.redis_appendfsync).await?;
    tracing::info!(url = %shop.http_url, dir = %dir.display(), seed, faults = plan.len(), "chaos run starting");
    let load_options = LoadOptions {
        url: shop.http_url.clone(),
        clients: args.clients,
        duration: args.duration,
        retry_for: RETRY_FOR,
        wait_timeout: RETRY_FOR,
        request_timeout: Duration::from_secs(15),
        settle: SETTLE,
        rng_seed: seed,
        products: 50,
        customers: 20,
        stock: 1_000_000,
    };
    let started = Instant::now();
    let load = tokio::spawn(async move { run_load(&load_options).await });
    let injected = faults::inject(&mut shop, &plan, started).await;
    let load = load
        .await
        .context("the load task panicked")?
        .context("the load could not go on")?;

    let client = shop.redis_client()?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let audit = settled_audit(&mut conn).await?;
    shop.stop().await;

    let report = Report::new(&args, seed, &load, injected, audit);
    // The report is the command's output, not a log line.
    std::io::stdout()
        .lock()
        .write_all(report.render(args.format).as_bytes())
        .context("cannot write the report")?;
    let failed = report.failed_checks();
    if failed > 0 {
        bail!(
            "{failed} check(s) failed; the shop's folder is kept: {}",
            dir.display()
        );
    }
    if owned_dir {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// The audit once the sagas are done, or as it stands after [`SETTLE`].
async fn settled_audit(
    conn: &mut redis::aio::MultiplexedConnection,
) -> anyhow::Result<audit::Audit> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let found = audit::audit(conn).await?;
        if found.settled() || Instant::now() >= deadline {
            return Ok(found);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
