//! The standard gRPC health service (`grpc.health.v1.Health`, tonic-health) beside the
//! Observer API: `hubble status` checks it before calling ServerStatus, and Hubble Relay and
//! Kubernetes gRPC probes use it too.

use tonic_health::{
    pb::health_server::{Health, HealthServer},
    server::HealthReporter,
    ServingStatus,
};

/// The service names answered SERVING while the API is up: `""` (the whole server, per the
/// gRPC health protocol), `observer.Observer` (the service's gRPC name),
/// `hubble.server.Observer` (what `hubble status` and Relay ask for: Cilium's
/// `v1.ObserverServiceName`) and `peer.Peer`.
pub const SERVICE_NAMES: [&str; 4] = [
    "",
    "observer.Observer",
    "hubble.server.Observer",
    "peer.Peer",
];

/// A health service reporting every name of [`SERVICE_NAMES`] as SERVING, and the handle
/// that changes that (see [`set_all`]).
pub async fn health_service() -> (HealthReporter, HealthServer<impl Health>) {
    let (reporter, server) = tonic_health::server::health_reporter();
    set_all(&reporter, ServingStatus::Serving).await;
    (reporter, server)
}

/// Reports `status` for every name of [`SERVICE_NAMES`] (NOT_SERVING on shutdown, so that
/// a watching client learns it before the connection goes).
pub async fn set_all(reporter: &HealthReporter, status: ServingStatus) {
    for name in SERVICE_NAMES {
        reporter.set_service_status(name, status).await;
    }
}

#[cfg(test)]
mod tests {
    use tonic::Request;
    use tonic_health::pb::{health_check_response::ServingStatus as Wire, HealthCheckRequest};

    use super::*;

    #[tokio::test]
    async fn serving_for_hubbles_names_and_unknown_otherwise() {
        let (reporter, server) = health_service().await;
        let svc = tonic_health::server::HealthService::from_health_reporter(reporter.clone());
        drop(server);
        let check = |name: &str| {
            let req = Request::new(HealthCheckRequest {
                service: name.to_string(),
            });
            let svc = &svc;
            async move { svc.check(req).await }
        };
        for name in SERVICE_NAMES {
            let r = check(name).await.unwrap().into_inner();
            assert_eq!(r.status(), Wire::Serving, "{name:?}");
        }
        let err = check("nope.Nope").await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
        set_all(&reporter, ServingStatus::NotServing).await;
        let r = check("hubble.server.Observer").await.unwrap().into_inner();
        assert_eq!(r.status(), Wire::NotServing);
    }
}
