//! One trace per order flow, across every role.
//!
//! A flow starts as an HTTP request at the gateway and goes on as queue
//! messages, gRPC calls, stored events and the sagas they trigger, in a
//! dozen processes. Each hop carries a W3C `traceparent` ([`context`]):
//! gRPC metadata (the client interceptor writes it, the server's span reads
//! it), the queue message's envelope and the event's stored fields (written
//! by the server from the span of the call that sent or published them,
//! read by the consumer's handling span). Spans are exported only when
//! asked for ([`export`]); [`tree`] prints a trace from trace files.

pub mod context;
pub mod export;
pub mod file;
pub mod tree;

pub use context::{
    TRACEPARENT, TRACERESPONSE, current_traceparent, is_valid, set_parent, trace_id,
    traceparent_header, traceparent_of,
};
pub use export::{ExportError, ExportOptions, Exporting};
pub use file::SpanRecord;
