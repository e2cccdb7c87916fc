//! Command line and the whole invocation: one run per `--clients` value, in
//! turn, then one report. Exits non-zero when a check fails.

use std::{
    io::Write as _,
    process::ExitCode,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, bail};
use clap::Parser;
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::{
    flow::FlowSettings,
    machine,
    render::{Format, render},
    report::{self, Report, Settings},
    run::{Limit, RunPlan, run},
    shop::Shop,
};

/// Full order flows (cart → order → IN_STOCK → billing → SHIPPED) from
/// concurrent clients against a running OrderShop; reports throughput,
/// latency per flow, stage and route, and checks the stock afterwards.
#[derive(Debug, Parser)]
#[command(name = "ordershop-loadgen", version)]
struct Args {
    #[command(flatten)]
    shop: ShopUrl,
    /// Concurrent clients; a list runs each in turn (`8,32`).
    #[arg(
        long,
        env = "ORDERSHOP_LOADGEN_CLIENTS",
        value_delimiter = ',',
        default_value = "8,32"
    )]
    clients: Vec<usize>,
    /// How long each run starts new flows (`20s`, `500ms`, `2m`); the
    /// default when --flows is not given is 20s.
    #[arg(long, env = "ORDERSHOP_LOADGEN_DURATION", value_parser = parse_duration, conflicts_with = "flows")]
    duration: Option<Duration>,
    /// Flows per run, over all clients (instead of --duration).
    #[arg(long, env = "ORDERSHOP_LOADGEN_FLOWS")]
    flows: Option<u64>,
    /// Products seeded per run, each with one inventory.
    #[arg(long, env = "ORDERSHOP_LOADGEN_PRODUCTS", default_value_t = 100)]
    products: usize,
    /// Customers seeded per run.
    #[arg(long, env = "ORDERSHOP_LOADGEN_CUSTOMERS", default_value_t = 50)]
    customers: usize,
    /// Seeded stock of every product. The default never runs out.
    #[arg(long, env = "ORDERSHOP_LOADGEN_STOCK", default_value_t = 1_000_000)]
    stock: i64,
    /// Out-of-stock carts and orders are expected (a deliberately small
    /// --stock), not failures.
    #[arg(long, env = "ORDERSHOP_LOADGEN_ALLOW_OUT_OF_STOCK")]
    allow_out_of_stock: bool,
    /// Items per cart are drawn from 1 to this, products with repeats.
    #[arg(long, env = "ORDERSHOP_LOADGEN_MAX_CART_ITEMS", default_value_t = 3)]
    max_cart_items: usize,
    /// Pause between polls of `GET /order/<id>` while a flow waits.
    #[arg(long, env = "ORDERSHOP_LOADGEN_POLL_INTERVAL", value_parser = parse_duration, default_value = "2ms")]
    poll_interval: Duration,
    /// A wait for IN_STOCK or SHIPPED longer than this fails the flow.
    #[arg(long, env = "ORDERSHOP_LOADGEN_WAIT_TIMEOUT", value_parser = parse_duration, default_value = "10s")]
    wait_timeout: Duration,
    /// A single HTTP request longer than this fails.
    #[arg(long, env = "ORDERSHOP_LOADGEN_REQUEST_TIMEOUT", value_parser = parse_duration, default_value = "30s")]
    request_timeout: Duration,
    /// Retry a call that failed in transport or with 502/503/504 for up to
    /// this long, as a client of a restarting shop would; every write then
    /// carries one `Idempotency-Key` across its tries, so a retry never
    /// applies it twice. The default, 0s, never retries (a benchmark counts
    /// every failure).
    #[arg(long, env = "ORDERSHOP_LOADGEN_RETRY_FOR", value_parser = parse_duration, default_value = "0s")]
    retry_for: Duration,
    /// How long the stock check waits for the read model to catch up.
    #[arg(long, env = "ORDERSHOP_LOADGEN_SETTLE", value_parser = parse_duration, default_value = "10s")]
    settle: Duration,
    /// Pause between runs, so that the previous run's trailing work (mails)
    /// does not land in the next one.
    #[arg(long, env = "ORDERSHOP_LOADGEN_PAUSE", value_parser = parse_duration, default_value = "5s")]
    pause: Duration,
    /// Seed of the carts' random choices; the default takes the clock.
    #[arg(long, env = "ORDERSHOP_LOADGEN_SEED")]
    seed: Option<u64>,
    #[arg(
        long,
        env = "ORDERSHOP_LOADGEN_FORMAT",
        value_enum,
        default_value = "markdown"
    )]
    format: Format,
}

const DEFAULT_DURATION: Duration = Duration::from_secs(20);

/// Where the shop under test answers (both binaries of this crate).
#[derive(Debug, clap::Args)]
pub(crate) struct ShopUrl {
    /// The shop's HTTP API.
    #[arg(
        long,
        env = "ORDERSHOP_LOADGEN_URL",
        default_value = "http://127.0.0.1:5000"
    )]
    pub(crate) url: String,
}

/// Logs to stderr (the report goes to stdout), `RUST_LOG` or `info`.
pub(crate) fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt::layer().compact().with_writer(std::io::stderr))
        .init();
}

/// Parses, runs, prints the report on stdout (logs go to stderr).
pub fn main() -> ExitCode {
    let args = Args::parse();
    init_logging();
    let format = args.format;
    run_to_exit(
        run_all(args),
        |report| render(report, format),
        Report::passed,
    )
}

/// Runs `work` on a multi-threaded runtime, writes its rendered report to
/// stdout, and exits non-zero when a check failed or the work failed.
pub(crate) fn run_to_exit<R>(
    work: impl Future<Output = anyhow::Result<R>>,
    render: impl Fn(&R) -> String,
    passed: impl Fn(&R) -> bool,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(error = %err, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(report) => {
            let mut stdout = std::io::stdout().lock();
            if let Err(err) = stdout.write_all(render(&report).as_bytes()) {
                tracing::error!(error = %err, "cannot write the report");
                return ExitCode::FAILURE;
            }
            if passed(&report) {
                ExitCode::SUCCESS
            } else {
                tracing::error!("a check failed; see the report");
                ExitCode::FAILURE
            }
        }
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_all(args: Args) -> anyhow::Result<Report> {
    let Args {
        shop: ShopUrl { url },
        clients,
        duration,
        flows,
        products,
        customers,
        stock,
        allow_out_of_stock,
        max_cart_items,
        poll_interval,
        wait_timeout,
        request_timeout,
        retry_for,
        settle,
        pause,
        seed,
        format: _,
    } = args;
    if clients.is_empty() || clients.contains(&0) {
        bail!("--clients needs one or more counts above zero");
    }
    if products == 0 || customers == 0 || max_cart_items == 0 {
        bail!("--products, --customers and --max-cart-items must be above zero");
    }
    if stock < 0 {
        bail!("--stock cannot be negative");
    }
    let limit = match flows {
        Some(flows) => Limit::Flows(flows),
        None => Limit::Duration(duration.unwrap_or(DEFAULT_DURATION)),
    };
    let rng_seed = seed.unwrap_or_else(clock_seed);
    let flow = FlowSettings {
        poll_interval,
        wait_timeout,
        max_cart_items,
        allow_out_of_stock,
    };
    let shop =
        Shop::new(&url, request_timeout, retry_for).context("cannot build the HTTP client")?;

    let mut runs = Vec::with_capacity(clients.len());
    for (index, &count) in clients.iter().enumerate() {
        if index > 0 {
            tokio::time::sleep(pause).await;
        }
        let plan = RunPlan {
            clients: count,
            limit,
            flow,
            rng_seed: rng_seed.wrapping_add(index as u64 * 1_000_003),
            products,
            customers,
            stock,
            tag: format!("{rng_seed:x}-{index}"),
            settle,
            progress_every: Duration::from_secs(5),
        };
        tracing::info!(clients = count, ?limit, %url, "run starting");
        let result = run(&shop, &plan)
            .await
            .with_context(|| format!("the run with {count} clients could not go on"))?;
        runs.push(report::summarize(&result));
    }
    Ok(Report {
        url,
        machine: machine::describe(),
        settings: Settings {
            limit: match limit {
                Limit::Duration(d) => format!("{d:?}"),
                Limit::Flows(n) => format!("{n} flows"),
            },
            poll_interval_ms: poll_interval.as_secs_f64() * 1000.0,
            wait_timeout_ms: wait_timeout.as_secs_f64() * 1000.0,
            products,
            customers,
            stock,
            max_cart_items,
            allow_out_of_stock,
            rng_seed,
        },
        runs,
    })
}

fn clock_seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// `250ms`, `20s`, `1.5s`, `2m`; a bare number is seconds (also the
/// chaos command's parser).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 20s, 500ms or 2m"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" | "min" => value * 60.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (use ms, s or m)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn durations_in_the_usual_units() {
        assert_eq!(parse_duration("2ms"), Ok(Duration::from_millis(2)));
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn arguments_are_consistent() {
        Args::command().debug_assert();
        let args =
            Args::try_parse_from(["loadgen", "--clients", "8,32", "--flows", "100"]).unwrap();
        assert_eq!(args.clients, vec![8, 32]);
        assert!(
            Args::try_parse_from(["loadgen", "--flows", "1", "--duration", "1s"]).is_err(),
            "--flows and --duration exclude each other"
        );
    }
}
