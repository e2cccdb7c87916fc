use ordershop_trace::{ExportOptions, Exporting};
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::{EnvFilter, Layer, fmt, prelude::*};

/// Log format, chosen by `--log-format` / `ORDERSHOP_LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`), and exports
/// spans if `export` asks for it (inside a Tokio runtime, for OTLP). The
/// returned guard flushes spans when dropped.
///
/// The log leaves spans out: they are for traces, and formatting each
/// one's fields for a log line that rarely comes would cost every message.
pub(crate) fn init(
    format: LogFormat,
    export: &ExportOptions,
) -> Result<Option<Exporting>, ordershop_trace::ExportError> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let events_only = filter.and(filter_fn(|meta| !meta.is_span()));
    let log = match format {
        LogFormat::Json => fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(events_only)
            .boxed(),
        LogFormat::Text => fmt::layer()
            .compact()
            .with_writer(std::io::stderr)
            .with_filter(events_only)
            .boxed(),
    };
    // The log first, so that an export that cannot start is logged.
    let (exporting, failed) = match Exporting::start(export) {
        Ok(exporting) => (exporting, None),
        Err(err) => (None, Some(err)),
    };
    let traces = exporting.as_ref().map(|e| e.layer());
    tracing_subscriber::registry().with(log).with(traces).init();
    match failed {
        Some(err) => Err(err),
        None => Ok(exporting),
    }
}
