//! Spans as JSON lines in a file: what `ordershop local --trace` writes per
//! role and `ordershop trace` reads back as a tree, with no collector to
//! run. One object per finished span, appended.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::SpanId;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use serde::{Deserialize, Serialize};

/// One finished span, as written to (and read from) a trace file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanRecord {
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    #[serde(default)]
    pub parent_span_id: String,
    pub name: String,
    /// The role that recorded it.
    pub service: String,
    pub start_unix_us: u64,
    pub duration_us: u64,
}

impl SpanRecord {
    fn of(span: &SpanData, service: &str) -> Self {
        let micros = |t: SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64)
        };
        let start = micros(span.start_time);
        Self {
            trace_id: span.span_context.trace_id().to_string(),
            span_id: span.span_context.span_id().to_string(),
            parent_span_id: if span.parent_span_id == SpanId::INVALID {
                String::new()
            } else {
                span.parent_span_id.to_string()
            },
            name: span.name.to_string(),
            service: service.to_owned(),
            start_unix_us: start,
            duration_us: micros(span.end_time).saturating_sub(start),
        }
    }
}

/// Appends every exported span to one file.
#[derive(Debug)]
pub(crate) struct FileExporter {
    service: String,
    out: Mutex<BufWriter<File>>,
}

impl FileExporter {
    pub(crate) fn create(path: &Path, service: &str) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            service: service.to_owned(),
            out: Mutex::new(BufWriter::new(file)),
        })
    }

    fn write(&self, batch: &[SpanData]) -> std::io::Result<()> {
        let mut out = self
            .out
            .lock()
            .map_err(|_| std::io::Error::other("trace file lock poisoned"))?;
        for span in batch {
            serde_json::to_writer(&mut *out, &SpanRecord::of(span, &self.service))?;
            out.write_all(b"\n")?;
        }
        // Each batch reaches the file at once; a reader skips a line caught
        // half written ([`crate::tree::read_dir`]).
        out.flush()
    }
}

impl SpanExporter for FileExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.write(&batch)
            .map_err(|e| OTelSdkError::InternalFailure(format!("trace file: {e}")))
    }
}
