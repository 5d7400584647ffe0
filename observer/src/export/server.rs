//! The metrics endpoint: a small hyper HTTP/1 server with `GET /metrics` (Prometheus text
//! format) and `GET /healthz` (the DaemonSet's probe).

use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    body::Incoming, header, server::conn::http1, service::service_fn, Method, Request, Response,
    StatusCode,
};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, task::JoinHandle};

use super::{metrics::Metrics, ExportError};

/// Binds `addr` and serves `/metrics` and `/healthz` until the task is aborted; returns the
/// bound address (useful with port 0) and the server task.
pub async fn serve_metrics(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
) -> Result<(SocketAddr, JoinHandle<()>), ExportError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| ExportError::Listen(addr, e))?;
    let local = listener
        .local_addr()
        .map_err(|e| ExportError::Listen(addr, e))?;
    tracing::info!(addr = %local, "serving Prometheus metrics on /metrics");
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("metrics server accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let metrics = metrics.clone();
                    async move { Ok::<_, Infallible>(respond(&req, &metrics)) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok((local, task))
}

fn respond(req: &Request<Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, ctype: &str, body: Bytes| {
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, ctype)
            .body(Full::new(body))
            .unwrap_or_default()
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            Bytes::from_static(b"GET only\n"),
        );
    }
    match req.uri().path() {
        "/metrics" => reply(
            StatusCode::OK,
            Metrics::CONTENT_TYPE,
            Bytes::from(metrics.encode()),
        ),
        "/healthz" => reply(StatusCode::OK, "text/plain", Bytes::from_static(b"ok\n")),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            Bytes::from_static(b"not found: try /metrics or /healthz\n"),
        ),
    }
}
