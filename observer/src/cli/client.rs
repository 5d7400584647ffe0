//! Connecting to the agent's API: `unix:///path` or `host:port`.

use std::path::PathBuf;

use anyhow::{anyhow, Result};
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

/// Default `--server`.
pub const DEFAULT_SERVER: &str = "unix:///var/run/flowscope/observer.sock";

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    if let Some(io) = cur.downcast_ref::<std::io::Error>() {
        // "No such file or directory" rather than "... (os error 2)".
        let s = io.to_string();
        return match s.find(" (os error") {
            Some(i) => s[..i].to_string(),
            None => s,
        };
    }
    cur.to_string()
}

/// Connects to `server`; the error says who wasn't reachable and what to do.
pub async fn connect(server: &str) -> Result<Channel> {
    let unreachable = |e: &(dyn std::error::Error + 'static)| {
        anyhow!(
            "cannot reach the flowscope agent at {server}: {} — is `flowscope agent` running?",
            root_cause(e)
        )
    };
    if let Some(path) = server
        .strip_prefix("unix://")
        .or_else(|| server.strip_prefix("unix:"))
    {
        let path = PathBuf::from(path);
        // The URI is only a placeholder: the connector below dials the socket.
        let ep = Endpoint::from_static("http://flowscope.local");
        return ep
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    let s = tokio::net::UnixStream::connect(&path).await?;
                    Ok::<_, std::io::Error>(TokioIo::new(s))
                }
            }))
            .await
            .map_err(|e| unreachable(&e));
    }
    let uri = if server.contains("://") {
        server.to_string()
    } else {
        format!("http://{server}")
    };
    let ep = Endpoint::from_shared(uri).map_err(|e| {
        anyhow!("invalid --server {server:?}: {e} (expected unix:///path or host:port)")
    })?;
    ep.connect().await.map_err(|e| unreachable(&e))
}

/// A gRPC error as the user should read it.
pub fn status_error(server: &str, s: &tonic::Status) -> anyhow::Error {
    match s.code() {
        tonic::Code::InvalidArgument => anyhow!("{}", s.message()),
        tonic::Code::Unavailable => anyhow!(
            "cannot reach the flowscope agent at {server}: {} — is `flowscope agent` running?",
            s.message()
        ),
        _ => anyhow!("{server}: {:?}: {}", s.code(), s.message()),
    }
}
