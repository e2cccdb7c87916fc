//! The report as Markdown tables (for the README) or as JSON (for tools).

use std::fmt::Write as _;

use crate::{machine::LoadAverage, report::Report};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Markdown,
    Json,
}

pub(crate) fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Markdown => markdown(report),
        Format::Json => {
            let mut json = serde_json::to_string_pretty(report)
                .unwrap_or_else(|e| format!("{{\"error\": \"cannot serialize the report: {e}\"}}"));
            json.push('\n');
            json
        }
    }
}

fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let m = &report.machine;
    let s = &report.settings;
    // Writing to a String cannot fail; the results are ignored on purpose.
    let _ = writeln!(
        out,
        "OrderShop at {} — machine: {}, {} CPUs, {:.1} GiB; {} per run, {} products × {} stock, \
         {} customers, 1–{} items per cart, poll every {} ms, wait timeout {} ms, seed {}\n",
        report.url,
        m.cpu_model,
        m.cpus,
        m.memory_gib,
        s.limit,
        s.products,
        s.stock,
        s.customers,
        s.max_cart_items,
        s.poll_interval_ms,
        s.wait_timeout_ms,
        s.rng_seed,
    );

    out.push_str(
        "| clients | flows | failed | flows/s | p50 ms | p95 ms | p99 ms | max ms | request errors | 5xx | stock | load 1m before → after |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n",
    );
    for run in &report.runs {
        let l = &run.flow_latency;
        let flows = if run.flows_out_of_stock > 0 {
            format!(
                "{} ({} out of stock)",
                run.flows_shipped + run.flows_out_of_stock,
                run.flows_out_of_stock
            )
        } else {
            run.flows_shipped.to_string()
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} → {} |",
            run.clients,
            flows,
            run.flows_failed,
            run.flows_per_s,
            l.p50_ms,
            l.p95_ms,
            l.p99_ms,
            l.max_ms,
            run.request_errors,
            run.server_errors,
            if run.stock.passed() { "ok" } else { "WRONG" },
            load(run.load_before),
            load(run.load_after),
        );
    }

    out.push_str(
        "\nWhere a flow's time goes (each stage of every flow):\n\n\
         | clients | stage | mean ms | p50 ms | p95 ms | p99 ms | max ms |\n\
         |---:|---|---:|---:|---:|---:|---:|\n",
    );
    for run in &report.runs {
        for stage in &run.stages {
            let l = &stage.latency;
            let _ = writeln!(
                out,
                "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
                run.clients, stage.stage, l.mean_ms, l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms
            );
        }
    }

    out.push_str(
        "\nPer route (polls of `GET /order/{id}` included):\n\n\
         | clients | route | requests | req/s | p50 ms | p95 ms | p99 ms | max ms | errors |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for run in &report.runs {
        for route in &run.routes {
            let l = &route.latency;
            let errors = if route.errors.is_empty() {
                "0".to_owned()
            } else {
                route
                    .errors
                    .iter()
                    .map(|(class, count)| format!("{class} ×{count}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                out,
                "| {} | `{}` | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
                run.clients,
                route.route,
                l.count,
                route.requests_per_s,
                l.p50_ms,
                l.p95_ms,
                l.p99_ms,
                l.max_ms,
                errors
            );
        }
        let _ = writeln!(
            out,
            "| {} | (polls per flow) | {:.1} | | | | | | |",
            run.clients, run.polls_per_flow
        );
    }

    out.push_str("\nChecks:\n\n");
    for run in &report.runs {
        for check in &run.checks {
            let _ = writeln!(
                out,
                "- {} clients, {}: {} ({})",
                run.clients,
                check.name,
                if check.passed { "passed" } else { "FAILED" },
                check.detail
            );
        }
        for failure in &run.failures {
            let _ = writeln!(
                out,
                "  - {} × at {}: {}",
                failure.count, failure.stage, failure.message
            );
        }
        for mismatch in run.stock.mismatches.iter().take(10) {
            let _ = writeln!(
                out,
                "  - inventory {} (product {}): seeded {}, expected {}, found {}",
                mismatch.inventory_id,
                mismatch.product_id,
                mismatch.seeded,
                mismatch.expected,
                mismatch
                    .actual
                    .map_or_else(|| "nothing".to_owned(), |a| a.to_string())
            );
        }
    }
    out
}

fn load(average: Option<LoadAverage>) -> String {
    average.map_or_else(|| "?".to_owned(), |l| format!("{:.2}", l.one))
}
