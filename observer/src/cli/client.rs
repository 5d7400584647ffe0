//! Connecting to the agent's API: `unix:///path` or `host:port`.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
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

/// TLS to the agent's TCP listener, with the `hubble` CLI's flag names.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// Use TLS (also implied by a `tls://` server address or any other --tls-* flag).
    #[arg(long)]
    pub tls: bool,
    /// CA certificates (PEM) the agent's certificate must chain to (repeatable or
    /// comma-separated).
    #[arg(long, value_name = "FILE", value_delimiter = ',')]
    pub tls_ca_cert_files: Vec<PathBuf>,
    /// Client certificate (PEM), for an agent that requires one (mTLS).
    #[arg(long, value_name = "FILE", requires = "tls_client_key_file")]
    pub tls_client_cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_client_cert_file")]
    pub tls_client_key_file: Option<PathBuf>,
    /// Name to check the agent's certificate against, e.g. NODE.default.hubble-grpc.cilium.io
    /// [default: the host of --server].
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,
}

impl TlsArgs {
    fn wanted(&self, server: &str) -> bool {
        self.tls
            || server.starts_with("tls://")
            || !self.tls_ca_cert_files.is_empty()
            || self.tls_client_cert_file.is_some()
            || self.tls_server_name.is_some()
    }

    /// The rustls client configuration these flags describe.
    fn client_config(&self) -> Result<rustls::ClientConfig> {
        use crate::api::tls::{provider, read_certs, read_identity, TlsFiles};
        let mut roots = rustls::RootCertStore::empty();
        for f in &self.tls_ca_cert_files {
            for c in read_certs("--tls-ca-cert-files", f)? {
                roots
                    .add(c)
                    .map_err(|e| anyhow!("--tls-ca-cert-files {}: {e}", f.display()))?;
            }
        }
        if roots.is_empty() {
            bail!("--tls needs --tls-ca-cert-files: the CA that signed the agent's certificate");
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let mut config = match (&self.tls_client_cert_file, &self.tls_client_key_file) {
            (Some(cert), Some(key)) => {
                let identity = read_identity(&TlsFiles {
                    cert_file: cert.clone(),
                    key_file: key.clone(),
                    client_ca_files: vec![],
                })
                .map_err(|e| {
                    // The server's option names in the message would mislead here.
                    anyhow!("--tls-client-cert-file/--tls-client-key-file: {e}")
                })?;
                builder.with_client_cert_resolver(std::sync::Arc::new(
                    rustls::sign::SingleCertAndKey::from(identity),
                ))
            }
            _ => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }
}

/// Connects to `server` over TLS as `tls` says (plaintext when it asks for nothing).
pub async fn connect_with(server: &str, tls: &TlsArgs) -> Result<Channel> {
    if !tls.wanted(server) {
        return connect(server).await;
    }
    let host_port = server
        .strip_prefix("tls://")
        .or_else(|| server.strip_prefix("https://"))
        .unwrap_or(server);
    let host = match host_port.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
        None => bail!("--server {server:?}: TLS needs host:port"),
    };
    let name = rustls::pki_types::ServerName::try_from(
        tls.tls_server_name
            .clone()
            .unwrap_or_else(|| host.to_string()),
    )
    .map_err(|e| anyhow!("--tls-server-name: {e}"))?;
    let config = std::sync::Arc::new(tls.client_config()?);
    let addr = host_port.to_string();
    let ep = Endpoint::from_shared(format!("http://{host_port}")).map_err(|e| {
        anyhow!("invalid --server {server:?}: {e} (expected tls://host:port or host:port)")
    })?;
    ep.connect_with_connector(tower::service_fn(move |_: Uri| {
        let (config, name, addr) = (config.clone(), name.clone(), addr.clone());
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok::<_, std::io::Error>(TokioIo::new(tls))
        }
    }))
    .await
    .map_err(|e| {
        anyhow!(
            "cannot reach the flowscope agent at {server} over TLS: {}",
            root_cause(&e)
        )
    })
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};

    use super::*;
    use crate::api::tls::{incoming, test_pki::*, ReloadingConfig, TlsFiles};

    #[tokio::test]
    async fn observe_and_status_reach_an_mtls_listener_with_hubbles_flags() {
        let dir = temp_dir("cli");
        let ca = Ca::new("test CA");
        let (cert_file, key_file) = ca.write(&dir, "server", &["*.default.hubble-grpc.cilium.io"]);
        let ca_file = dir.join("ca.crt");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        let files = TlsFiles {
            cert_file,
            key_file,
            client_ca_files: vec![ca_file.clone()],
        };
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = l.local_addr().unwrap().to_string();
        let (_, health) = crate::api::health::health_service().await;
        let tls = Arc::new(ReloadingConfig::load(files).unwrap());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(health)
                .serve_with_incoming(incoming(l, tls)),
        );
        let (client_crt, client_key) = ca.write(&dir, "client", &["observer-client"]);
        let args = TlsArgs {
            tls: true,
            tls_ca_cert_files: vec![ca_file],
            tls_client_cert_file: Some(client_crt),
            tls_client_key_file: Some(client_key),
            tls_server_name: Some("n1.default.hubble-grpc.cilium.io".into()),
        };
        let check = |ch: Channel| async move {
            HealthClient::new(ch)
                .check(HealthCheckRequest::default())
                .await
                .map(|r| r.into_inner().status)
        };
        let ch = connect_with(&server, &args).await.unwrap();
        assert_eq!(check(ch).await.unwrap(), 1);
        let ch = connect_with(&format!("tls://{server}"), &args)
            .await
            .unwrap();
        assert_eq!(check(ch).await.unwrap(), 1);
        // No client certificate: refused.
        let anonymous = TlsArgs {
            tls_client_cert_file: None,
            tls_client_key_file: None,
            ..args.clone()
        };
        let refused = match connect_with(&server, &anonymous).await {
            Ok(ch) => check(ch).await.is_err(),
            Err(_) => true,
        };
        assert!(refused);
        // The wrong name: the certificate is not accepted.
        let wrong = TlsArgs {
            tls_server_name: Some("other.example".into()),
            ..args.clone()
        };
        let e = connect_with(&server, &wrong).await.unwrap_err().to_string();
        assert!(e.contains("over TLS") && e.contains("certificate"), "{e}");
        // --tls without a CA: said so.
        let e = connect_with(
            &server,
            &TlsArgs {
                tls: true,
                ..Default::default()
            },
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(e.contains("--tls-ca-cert-files"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
