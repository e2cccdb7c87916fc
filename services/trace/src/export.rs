//! Span export, off unless asked for: to an OTLP collector over gRPC
//! (`--otlp-endpoint`, `OTEL_EXPORTER_OTLP_ENDPOINT`) and/or to a JSON-lines
//! file (`--trace-file`, what `ordershop local --trace` sets per role).
//!
//! Only spans of OrderShop's own crates at `info` or above are traced,
//! whatever `RUST_LOG` says: the log filter decides what is printed, not
//! what is traced.

use std::path::PathBuf;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider, SpanExporter,
};
use tracing::{Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, filter_fn};
use tracing_subscriber::registry::LookupSpan;

use crate::file::FileExporter;

/// Where spans go; neither set means tracing is off.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// `service.name` of every span: the role.
    pub service: String,
    /// An OTLP/gRPC collector, e.g. `http://otel-collector:4317`.
    pub otlp_endpoint: Option<String>,
    /// A JSON-lines file to append spans to.
    pub file: Option<PathBuf>,
}

impl ExportOptions {
    pub fn enabled(&self) -> bool {
        self.otlp_endpoint.is_some() || self.file.is_some()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot open the trace file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot export spans to {endpoint}: {source}")]
    Otlp {
        endpoint: String,
        source: opentelemetry_otlp::ExporterBuildError,
    },
}

/// Spans being exported; dropping it flushes what is buffered.
#[derive(Debug)]
pub struct Exporting {
    provider: SdkTracerProvider,
}

/// Spans leave at most this long after they end (the batch processor's
/// delay; a tester waiting for a trace waits about this long).
const EXPORT_DELAY: Duration = Duration::from_millis(500);

impl Exporting {
    /// Starts export as `options` say, or `None` when tracing is off. With
    /// an OTLP endpoint, call it inside a Tokio runtime (tonic's channel).
    pub fn start(options: &ExportOptions) -> Result<Option<Self>, ExportError> {
        if !options.enabled() {
            return Ok(None);
        }
        let mut builder = SdkTracerProvider::builder()
            // A flow that arrives traced stays traced; one that starts here
            // is traced too (every flow, as the export was asked for).
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
            .with_resource(
                Resource::builder()
                    .with_service_name(options.service.clone())
                    .build(),
            );
        if let Some(path) = &options.file {
            let exporter = FileExporter::create(path, &options.service).map_err(|source| {
                ExportError::File {
                    path: path.display().to_string(),
                    source,
                }
            })?;
            builder = builder.with_span_processor(batched(exporter));
        }
        if let Some(endpoint) = &options.otlp_endpoint {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()
                .map_err(|source| ExportError::Otlp {
                    endpoint: endpoint.clone(),
                    source,
                })?;
            builder = builder.with_span_processor(batched(exporter));
        }
        Ok(Some(Self {
            provider: builder.build(),
        }))
    }

    /// The `tracing` layer that turns OrderShop's spans into exported ones.
    pub fn layer<S>(&self) -> impl Layer<S> + use<S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("ordershop"))
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_filter(
                filter_fn(|meta| {
                    meta.is_span()
                        && *meta.level() <= Level::INFO
                        && meta.target().starts_with("ordershop")
                })
                .with_max_level_hint(LevelFilter::INFO),
            )
    }
}

/// `exporter` behind a batch processor of its own thread, sending at most
/// [`EXPORT_DELAY`] after a span ends.
fn batched(exporter: impl SpanExporter + 'static) -> BatchSpanProcessor {
    BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_scheduled_delay(EXPORT_DELAY)
                .build(),
        )
        .build()
}

impl Drop for Exporting {
    fn drop(&mut self) {
        // Best effort: a collector that is gone must not hold up a stop.
        let _ = self.provider.shutdown_with_timeout(Duration::from_secs(2));
    }
}
