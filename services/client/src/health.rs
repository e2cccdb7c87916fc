use std::time::Duration;

use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// One standard gRPC health check of the overall service (name ""),
/// bounded to a second so readiness probes never hang.
pub(crate) async fn serving(channel: Channel) -> bool {
    let mut client = HealthClient::new(channel);
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    request.set_timeout(Duration::from_secs(1));
    match client.check(request).await {
        Ok(reply) => reply.into_inner().status() == ServingStatus::Serving,
        Err(_) => false,
    }
}
