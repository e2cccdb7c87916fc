//! A tower layer for tonic servers: counts every gRPC call by method and
//! status code and times it to its response headers.
//!
//! The code is read from the response headers: tonic answers a failed call
//! "trailers-only", with `grpc-status` in the headers, and a successful one
//! with the status in its trailers, so no `grpc-status` header means OK. A
//! stream that fails after it started counts as OK (its start succeeded).
//! Requests that are not gRPC (`GET /metrics` on the same port) are not
//! counted.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use tonic::codegen::http::{Request, Response, header::CONTENT_TYPE};
use tower::{Layer, Service};

use crate::families::{GRPC_HANDLED, GRPC_SECONDS, MethodCodeLabels, MethodLabels};

/// The packages whose methods are labelled by name; anything else a client
/// calls is `unknown`, and so is any method answered Unimplemented (a name
/// under these packages that no service has).
const KNOWN_PACKAGES: [&str; 3] = ["/ordershop.", "/grpc.health.", "/grpc.reflection."];

#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcMetricsLayer;

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner }
    }
}

#[derive(Debug, Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for GrpcMetrics<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let is_grpc = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/grpc"));
        let method = method_label(request.uri().path());
        let started = Instant::now();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answer = answer.await;
            if is_grpc {
                let code = match &answer {
                    Ok(response) => code_label(
                        response
                            .headers()
                            .get("grpc-status")
                            .and_then(|v| v.to_str().ok()),
                    ),
                    Err(_) => "Unavailable".to_owned(),
                };
                // A method no service has: its name is the client's to
                // choose, so it is not a label value.
                let method = if code == "Unimplemented" {
                    "unknown".to_owned()
                } else {
                    method
                };
                GRPC_SECONDS
                    .get_or_create(&MethodLabels {
                        method: method.clone(),
                    })
                    .observe(started.elapsed().as_secs_f64());
                GRPC_HANDLED
                    .get_or_create(&MethodCodeLabels { method, code })
                    .inc();
            }
            answer
        })
    }
}

fn method_label(path: &str) -> String {
    if KNOWN_PACKAGES.iter().any(|p| path.starts_with(p)) && path.len() <= 128 {
        path.to_owned()
    } else {
        "unknown".to_owned()
    }
}

/// `grpc-status` as the code's name (`InvalidArgument`); none is `Ok`.
fn code_label(status: Option<&str>) -> String {
    let code = status
        .and_then(|s| s.parse::<i32>().ok())
        .map_or(tonic::Code::Ok, tonic::Code::from_i32);
    format!("{code:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_methods_are_bounded() {
        assert_eq!(code_label(None), "Ok");
        assert_eq!(code_label(Some("3")), "InvalidArgument");
        assert_eq!(code_label(Some("nonsense")), "Ok");
        assert_eq!(
            method_label("/ordershop.eventstore.v1.EventStore/Publish"),
            "/ordershop.eventstore.v1.EventStore/Publish"
        );
        assert_eq!(method_label("/evil/Anything"), "unknown");
        assert_eq!(
            method_label(&format!("/ordershop.{}", "x".repeat(200))),
            "unknown"
        );
    }
}
