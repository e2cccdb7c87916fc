//! W3C trace context (`traceparent`) in and out of `tracing` spans.
//!
//! Where a flow crosses a process it carries one `traceparent` string: in
//! gRPC metadata, in an HTTP header, in a queue message's envelope and in a
//! stored event. Written from the current span, read into a new span's
//! parent. Without span export ([`crate::export`]) spans carry no trace
//! context: nothing is written, and a parent read is dropped.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C header (and metadata key, and stored field) name.
pub const TRACEPARENT: &str = "traceparent";

/// The header a traced HTTP answer carries, so a caller can find the trace
/// of its request (W3C Trace Context Level 2 `traceresponse`).
pub const TRACERESPONSE: &str = "traceresponse";

/// One `traceparent` value, as carried in envelopes and events.
#[derive(Default)]
struct One(Option<String>);

impl Injector for One {
    fn set(&mut self, key: &str, value: String) {
        if key == TRACEPARENT {
            self.0 = Some(value);
        }
    }
}

impl Extractor for One {
    fn get(&self, key: &str) -> Option<&str> {
        (key == TRACEPARENT).then_some(self.0.as_deref()).flatten()
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT]
    }
}

/// The `traceparent` of `span`, or `""` when it has no valid trace context
/// (no span export configured, or a disabled span).
pub fn traceparent_of(span: &Span) -> String {
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return String::new();
    }
    let mut one = One::default();
    TraceContextPropagator::new().inject_context(&context, &mut one);
    one.0.unwrap_or_default()
}

/// The `traceparent` of the current span (see [`traceparent_of`]).
pub fn current_traceparent() -> String {
    traceparent_of(&Span::current())
}

/// The context `traceparent` names, if it is a W3C value this process can
/// continue (version, trace id, span id and flags well formed, ids not zero).
fn remote_context(traceparent: &str) -> Option<opentelemetry::Context> {
    if traceparent.is_empty() {
        return None;
    }
    let context = TraceContextPropagator::new().extract(&One(Some(traceparent.to_owned())));
    let valid = context.span().span_context().is_valid();
    valid.then_some(context)
}

/// Makes the span that `traceparent` names the parent of `span`, which must
/// not have been entered yet. A blank or malformed value leaves `span` a
/// root: a trace is an aid, never a reason to refuse work.
pub fn set_parent(span: &Span, traceparent: &str) {
    if let Some(context) = remote_context(traceparent) {
        // Fails only without the OpenTelemetry layer, when there is no
        // trace to join anyway.
        let _ = span.set_parent(context);
    }
}

/// Whether `traceparent` is a W3C value this process can continue.
pub fn is_valid(traceparent: &str) -> bool {
    remote_context(traceparent).is_some()
}

/// The `traceparent` header of an HTTP request or gRPC call, if any.
pub fn traceparent_header(headers: &http::HeaderMap) -> Option<&str> {
    headers.get(TRACEPARENT).and_then(|v| v.to_str().ok())
}

/// The 32-hex-digit trace id in a `traceparent`, if it is well formed.
pub fn trace_id(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let (_version, trace_id) = (parts.next()?, parts.next()?);
    (trace_id.len() == 32 && trace_id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(trace_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_id_is_read_from_a_well_formed_value_only() {
        assert_eq!(
            trace_id("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(trace_id("00-xyz-00f067aa0ba902b7-01"), None);
        assert_eq!(trace_id(""), None);
    }

    #[test]
    fn only_well_formed_values_are_valid() {
        assert!(is_valid(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        // Zero ids, a bad span id, a bad version, nothing.
        assert!(!is_valid(
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01"
        ));
        assert!(!is_valid("00-4bf92f3577b34da6a3ce929d0e0e4736-xyz-01"));
        assert!(!is_valid(
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        assert!(!is_valid(""));
    }

    #[test]
    fn without_span_export_nothing_is_written_and_nothing_breaks() {
        let span = tracing::info_span!("untraced");
        set_parent(
            &span,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        );
        set_parent(&span, "not a traceparent");
        assert_eq!(traceparent_of(&span), "");
    }
}
