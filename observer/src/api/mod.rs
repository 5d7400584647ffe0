//! The Hubble-compatible Observer API: the ring of recent flows ([`store::FlowStore`]), the
//! `observer.Observer` and `flowscope.Agent` gRPC services, and the filters they share with
//! `flowscope observe`.
//!
//! The agent wires it like this:
//!
//! ```ignore
//! let cfg = ApiConfig { unix_socket, tcp: None, max_flows: 65_536, node_name };
//! let store = cfg.new_store();
//! let status = StatusHandle::default();          // status.set_provider(|| AgentStatus {..})
//! tokio::spawn(api::serve(cfg, store.clone(), status.clone(), shutdown_future));
//! store.push_record(&flow);                     // for every flows::record::Flow
//! store.note_lost(LostSource::KernelRing, n);   // when the kernel ring overflowed
//! ```

pub mod convert;
pub mod filter;
pub mod proto;
pub mod service;
pub mod status;
pub mod store;

use std::{
    future::Future,
    io,
    net::SocketAddr,
    os::unix::fs::{FileTypeExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{bail, Context, Result};
use tokio::{net::UnixListener, sync::watch};
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};

pub use status::{AgentStatus, StatusHandle};
pub use store::{FlowStore, LostSource};

use proto::{flowscope::agent_server::AgentServer, observer::observer_server::ObserverServer};
use service::ObserverService;

/// Default unix socket of the API (and default `--server` of `flowscope observe`).
pub const DEFAULT_SOCKET: &str = "/var/run/flowscope/observer.sock";

/// Where and how to serve the API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Unix socket path (mode 0660; its directory is created).
    pub unix_socket: PathBuf,
    /// Also serve plaintext gRPC on this TCP address.
    pub tcp: Option<SocketAddr>,
    /// Ring capacity for [`ApiConfig::new_store`].
    pub max_flows: usize,
    /// Node name stamped on flows.
    pub node_name: String,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            unix_socket: PathBuf::from(DEFAULT_SOCKET),
            tcp: None,
            max_flows: store::DEFAULT_MAX_FLOWS,
            node_name: default_node_name(),
        }
    }
}

impl ApiConfig {
    /// A store sized and named per this config.
    pub fn new_store(&self) -> Arc<FlowStore> {
        Arc::new(FlowStore::new(self.max_flows, self.node_name.clone()))
    }
}

/// This host's name (what Hubble uses as node name outside Kubernetes); `$NODE_NAME` wins,
/// as set by the DaemonSet from the downward API.
pub fn default_node_name() -> String {
    if let Ok(n) = std::env::var("NODE_NAME") {
        if !n.is_empty() {
            return n;
        }
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Binds the unix socket: creates the directory, removes a stale socket left by a dead agent
/// (refuses when another agent still answers on it), sets mode 0660.
fn bind_unix(path: &Path) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the API socket directory {}", dir.display()))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(md) if md.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                bail!(
                    "another process is serving {} — is another `flowscope agent` running? \
                     Stop it or pass a different --listen",
                    path.display()
                );
            }
            std::fs::remove_file(path)
                .with_context(|| format!("cannot remove the stale socket {}", path.display()))?;
        }
        Ok(_) => bail!(
            "{} exists and is not a socket; refusing to replace it",
            path.display()
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", path.display())),
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("cannot listen on unix socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("cannot chmod 0660 {}", path.display()))?;
    Ok(listener)
}

/// Removes the socket file when dropped (on shutdown, error or panic).
struct SocketGuard(PathBuf);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Serves `observer.Observer` and `flowscope.Agent` on the unix socket (and TCP when
/// configured) until `shutdown` completes; removes the socket file before returning.
pub async fn serve(
    cfg: ApiConfig,
    store: Arc<FlowStore>,
    status: StatusHandle,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let unix = bind_unix(&cfg.unix_socket)?;
    let _guard = SocketGuard(cfg.unix_socket.clone());
    let tcp = match cfg.tcp {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} for the API"))?,
        ),
        None => None,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let svc = ObserverService::new(store, status);
    let router = || {
        tonic::transport::Server::builder()
            .add_service(ObserverServer::new(svc.clone()))
            .add_service(AgentServer::new(svc.clone()))
    };
    tracing::info!(socket = %cfg.unix_socket.display(), "observer API listening");
    let unix_srv = router().serve_with_incoming_shutdown(
        UnixListenerStream::new(unix),
        stopped(stop_rx.clone()),
    );
    match tcp {
        Some(l) => {
            tracing::info!(addr = %l.local_addr()?, "observer API listening on TCP (plaintext)");
            let tcp_srv = router().serve_with_incoming_shutdown(
                TcpListenerStream::new(l),
                stopped(stop_rx.clone()),
            );
            let (a, b) = tokio::join!(unix_srv, tcp_srv);
            a.context("observer API (unix socket) failed")?;
            b.context("observer API (TCP) failed")?;
        }
        None => unix_srv.await.context("observer API (unix socket) failed")?,
    }
    Ok(())
}
