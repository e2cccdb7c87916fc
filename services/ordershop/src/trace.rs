//! `ordershop trace`: a flow's spans across every role, as a tree, from the
//! trace files `ordershop local --trace` writes. The gateway names a traced
//! request's trace in its `traceresponse` header.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use ordershop_trace::tree;

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct TraceArgs {
    /// The trace to print (32 hex digits, as in `traceresponse`); without
    /// it, the latest traces are listed.
    trace_id: Option<String>,
    /// The data directory of the `ordershop local --trace` run.
    #[arg(long, env = "ORDERSHOP_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// How many traces to list.
    #[arg(long, default_value_t = 20)]
    limit: usize,
}

pub(crate) fn run(args: &TraceArgs) -> anyhow::Result<()> {
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(crate::local::default_data_dir);
    let dir = crate::local::traces_dir(&data_dir);
    if !dir.is_dir() {
        bail!(
            "no trace files in {}: run the shop with `ordershop local --trace` (and the same --data-dir)",
            dir.display()
        );
    }
    let spans = tree::read_dir(&dir)?;
    let mut out = std::io::stdout().lock();
    match &args.trace_id {
        Some(id) => {
            let id = id.trim().to_ascii_lowercase();
            let trees = tree::trace(&spans, &id);
            if trees.is_empty() {
                bail!("no span of trace {id} in {}", dir.display());
            }
            write!(out, "{}", tree::render(&trees)).context("writing the trace")?;
        }
        None => {
            for (first, count) in tree::recent(&spans, args.limit) {
                writeln!(
                    out,
                    "{}  {:>4} spans  {} [{}]",
                    first.trace_id, count, first.name, first.service
                )
                .context("writing the list")?;
            }
        }
    }
    Ok(())
}
