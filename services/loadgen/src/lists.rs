//! `ordershop-lists`: every list route of a running shop, read whole a
//! number of rounds (status, latency to the last byte, size), then walked
//! page by page (`?limit=&after=`) to check that a walk returns every
//! entry exactly once and as many as the whole list. Optionally samples
//! the gateway's resident memory meanwhile (`--gateway-pid`).
//!
//! Run it after a load run has filled the shop (e.g. 20,000 flows); the
//! figures in the README come from `services/loadgen/bench/lists.sh`.

use std::{
    collections::BTreeSet,
    fmt::Write as _,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use clap::Parser;
use serde::Serialize;
use serde_json::Value;

use crate::{
    render::Format,
    stats::{Samples, Summary},
};

/// Every list route of the gateway, whole.
const ROUTES: &[&str] = &[
    "/customers",
    "/products",
    "/inventories",
    "/carts",
    "/orders",
    "/billings",
    "/shippings",
    "/orders/unbilled",
    "/orders/unshipped",
    "/orders/delivered",
    "/mails/sent",
    "/report/orders",
    "/report",
    "/report?limit=50",
];

/// Routes walked page by page, and how an entry is identified.
const WALKS: &[(&str, Key)] = &[
    ("/customers", Key::Entity),
    ("/products", Key::Entity),
    ("/inventories", Key::Entity),
    ("/carts", Key::Entity),
    ("/orders", Key::Entity),
    ("/billings", Key::Entity),
    ("/shippings", Key::Entity),
    ("/orders/unbilled", Key::Map),
    ("/orders/unshipped", Key::Map),
    ("/orders/delivered", Key::Entity),
    ("/mails/sent", Key::Entry),
    ("/report/orders", Key::Entity),
];

#[derive(Debug, Clone, Copy)]
enum Key {
    /// Entities: their `entity_id`.
    Entity,
    /// The result is a map id → entity.
    Map,
    /// Mails: `[entry_id, event]`.
    Entry,
}

/// Reads every list route of a running OrderShop whole, then walks each
/// page by page; exits non-zero on any error or a walk that does not see
/// each entry once.
#[derive(Debug, Parser)]
#[command(name = "ordershop-lists", version)]
struct Args {
    #[command(flatten)]
    shop: crate::cli::ShopUrl,
    /// Times each route is read whole.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Entries per page of the walks.
    #[arg(long, default_value_t = 500)]
    page: usize,
    /// A request longer than this fails.
    #[arg(long, value_parser = crate::cli::parse_duration, default_value = "60s")]
    request_timeout: Duration,
    /// The gateway's process id: its resident memory is sampled every
    /// 20 ms during the run.
    #[arg(long)]
    gateway_pid: Option<u32>,
    #[arg(long, value_enum, default_value = "markdown")]
    format: Format,
}

/// What one route did over the rounds.
#[derive(Debug, Clone, Serialize)]
struct RouteResult {
    route: String,
    ok: u64,
    failed: u64,
    /// The first failure, as the client saw it.
    failure: Option<String>,
    latency: Summary,
    /// Size of the last whole answer.
    bytes: u64,
    /// Entries in the last whole answer (the report: every list summed).
    entries: u64,
}

/// One page-by-page walk.
#[derive(Debug, Clone, Serialize)]
struct WalkResult {
    route: String,
    pages: u64,
    entries: u64,
    duplicates: u64,
    /// Entries of the whole list read right after the walk.
    whole: u64,
    failure: Option<String>,
    /// Latency of each page.
    page_latency: Summary,
}

#[derive(Debug, Clone, Serialize)]
struct ListsReport {
    url: String,
    rounds: usize,
    page: usize,
    routes: Vec<RouteResult>,
    walks: Vec<WalkResult>,
    /// Highest resident memory of the gateway seen during the run, MiB.
    gateway_max_rss_mib: Option<f64>,
}

impl ListsReport {
    fn passed(&self) -> bool {
        self.routes.iter().all(|r| r.failed == 0)
            && self
                .walks
                .iter()
                .all(|w| w.failure.is_none() && w.duplicates == 0 && w.entries == w.whole)
    }
}

/// Parses, runs, prints; the exit code says whether every check passed.
pub fn main() -> std::process::ExitCode {
    let args = Args::parse();
    crate::cli::init_logging();
    let format = args.format;
    crate::cli::run_to_exit(
        run(args),
        |report| render(report, format),
        ListsReport::passed,
    )
}

async fn run(args: Args) -> anyhow::Result<ListsReport> {
    if args.rounds == 0 || !(1..=1000).contains(&args.page) {
        bail!("--rounds must be at least 1 and --page from 1 to 1000");
    }
    let http = reqwest::Client::builder()
        .timeout(args.request_timeout)
        .build()
        .context("HTTP client")?;
    let base = args.shop.url.trim_end_matches('/').to_owned();
    let memory = args.gateway_pid.map(RssSampler::start);

    let mut routes = Vec::new();
    for route in ROUTES {
        let mut samples = Samples::default();
        let (mut ok, mut failed, mut failure, mut bytes, mut entries) = (0, 0, None, 0, 0);
        for _ in 0..args.rounds {
            let started = Instant::now();
            let answer = get(&http, &format!("{base}{route}")).await;
            samples.record(started.elapsed());
            match answer {
                Ok((body, size)) => {
                    ok += 1;
                    bytes = size;
                    entries = count_entries(&body["result"]);
                }
                Err(err) => {
                    failed += 1;
                    failure.get_or_insert(err);
                }
            }
        }
        tracing::info!(route, ok, failed, "route read");
        routes.push(RouteResult {
            route: (*route).to_owned(),
            ok,
            failed,
            failure,
            latency: samples.summary(),
            bytes,
            entries,
        });
    }

    let mut walks = Vec::new();
    for (route, key) in WALKS {
        walks.push(walk(&http, &base, route, *key, args.page).await);
    }
    Ok(ListsReport {
        url: base,
        rounds: args.rounds,
        page: args.page,
        routes,
        walks,
        gateway_max_rss_mib: memory.map(RssSampler::stop),
    })
}

/// A GET that must answer 200 with JSON; the body and its size.
async fn get(http: &reqwest::Client, url: &str) -> Result<(Value, u64), String> {
    let response = http.get(url).send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| format!("body: {e}"))?;
    if !status.is_success() {
        return Err(format!(
            "HTTP {status}: {:.200}",
            String::from_utf8_lossy(&bytes)
        ));
    }
    let body = serde_json::from_slice(&bytes).map_err(|e| format!("not JSON: {e}"))?;
    Ok((body, bytes.len() as u64))
}

/// Entries of a result: a list's or a map's length, a report's lists summed.
fn count_entries(result: &Value) -> u64 {
    match result {
        Value::Array(items) => items.len() as u64,
        Value::Object(fields) if fields.values().all(Value::is_array) => {
            fields.values().map(count_entries).sum()
        }
        Value::Object(fields) => fields.len() as u64,
        _ => 0,
    }
}

async fn walk(
    http: &reqwest::Client,
    base: &str,
    route: &str,
    key: Key,
    limit: usize,
) -> WalkResult {
    let mut result = WalkResult {
        route: route.to_owned(),
        pages: 0,
        entries: 0,
        duplicates: 0,
        whole: 0,
        failure: None,
        page_latency: Samples::default().summary(),
    };
    let mut seen = BTreeSet::new();
    let mut after: Option<String> = None;
    let mut samples = Samples::default();
    loop {
        let mut url = format!("{base}{route}?limit={limit}");
        if let Some(after) = &after {
            url.push_str("&after=");
            url.push_str(&percent_encode(after));
        }
        let started = Instant::now();
        let page = get(http, &url).await;
        samples.record(started.elapsed());
        result.page_latency = samples.summary();
        let page = match page {
            Ok((page, _)) => page,
            Err(err) => {
                result.failure = Some(err);
                return result;
            }
        };
        result.pages += 1;
        for id in keys(&page["result"], key) {
            result.entries += 1;
            if !seen.insert(id) {
                result.duplicates += 1;
            }
        }
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    match get(http, &format!("{base}{route}")).await {
        Ok((whole, _)) => result.whole = keys(&whole["result"], key).len() as u64,
        Err(err) => result.failure = Some(format!("whole list: {err}")),
    }
    result
}

fn keys(result: &Value, key: Key) -> Vec<String> {
    match (key, result) {
        (Key::Map, Value::Object(map)) => map.keys().cloned().collect(),
        (Key::Entity, Value::Array(items)) => items
            .iter()
            .filter_map(|item| item["entity_id"].as_str().map(str::to_owned))
            .collect(),
        (Key::Entry, Value::Array(items)) => items
            .iter()
            .filter_map(|item| item[0].as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// Cursors are ids: anything but unreserved characters is escaped.
fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// Samples `VmRSS` of a process every 20 ms on a thread of its own.
struct RssSampler {
    stop: Arc<AtomicBool>,
    max_kib: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let max_kib = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, max_kib) = (stop.clone(), max_kib.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(kib) = rss_kib(pid) {
                        max_kib.fetch_max(kib, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        RssSampler {
            stop,
            max_kib,
            thread,
        }
    }

    fn stop(self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        self.max_kib.load(Ordering::Relaxed) as f64 / 1024.0
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn render(report: &ListsReport, format: Format) -> String {
    if format == Format::Json {
        return serde_json::to_string_pretty(report).unwrap_or_default() + "\n";
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "OrderShop lists at {} — {} rounds per route, walks of {} per page{}\n",
        report.url,
        report.rounds,
        report.page,
        report
            .gateway_max_rss_mib
            .map(|m| format!("; gateway resident memory at most {m:.1} MiB"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "| route | ok | failed | p50 ms | p99 ms | max ms | entries | KiB |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in &report.routes {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {:.1} | {:.1} | {:.1} | {} | {:.0} |",
            r.route,
            r.ok,
            r.failed,
            r.latency.p50_ms,
            r.latency.p99_ms,
            r.latency.max_ms,
            r.entries,
            r.bytes as f64 / 1024.0
        );
    }
    let failures: Vec<_> = report
        .routes
        .iter()
        .filter_map(|r| Some((&r.route, r.failure.as_ref()?)))
        .collect();
    for (route, failure) in failures {
        let _ = writeln!(out, "\n`{route}` failed: {failure}");
    }
    let _ = writeln!(
        out,
        "\n| walk | pages | page p50 ms | page p99 ms | page max ms | entries | twice | whole list | ok |\n|---|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for w in &report.walks {
        let ok = match &w.failure {
            Some(failure) => format!("no: {failure:.120}"),
            None if w.duplicates > 0 || w.entries != w.whole => "no".to_owned(),
            None => "yes".to_owned(),
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} |",
            w.route,
            w.pages,
            w.page_latency.p50_ms,
            w.page_latency.p99_ms,
            w.page_latency.max_ms,
            w.entries,
            w.duplicates,
            w.whole,
            ok
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn entries_are_counted_by_shape() {
        assert_eq!(count_entries(&json!([1, 2, 3])), 3);
        assert_eq!(count_entries(&json!({"o1": {}, "o2": {}})), 2);
        assert_eq!(count_entries(&json!({"a": [1], "b": [1, 2]})), 3);
        assert_eq!(
            keys(&json!([["1-0", {}], ["2-0", {}]]), Key::Entry),
            ["1-0", "2-0"]
        );
        assert_eq!(percent_encode("a b/ü"), "a%20b%2F%C3%BC");
    }
}
