//! TLS, and mutual TLS, on the Observer API's TCP listener: what Hubble Relay expects of a
//! Hubble server (it dials its peers over TLS unless told `disable-client-tls`).
//!
//! The options mirror the Cilium agent's: `hubble-tls-cert-file` and `hubble-tls-key-file`
//! (this server's certificate chain and key, PEM), `hubble-tls-client-ca-files` (when given,
//! every client must present a certificate signed by one of these CAs: mTLS, as Cilium
//! deploys Relay) and `hubble-disable-tls` (plaintext, only when asked for).
//!
//! Certificates are rotated on disk (cert-manager, Cilium's certgen CronJob, a Kubernetes
//! Secret's atomic symlink swap), so the files are looked at again — at most every
//! [`RECHECK`], when a connection comes in — and a change of any of them builds a new rustls
//! configuration for the connections after it; open connections keep theirs. A change that
//! does not load (the certificate written but not yet its key) keeps the previous
//! configuration and is tried again at the next change. At start-up a file that does not load
//! is an error naming the option and the file.
//!
//! The unix socket stays plaintext: whoever can open it (mode 0660) is on the node already.

use std::{
    io,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use rustls::{
    crypto::CryptoProvider,
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    server::WebPkiClientVerifier,
    sign::CertifiedKey,
    RootCertStore, ServerConfig,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_stream::{wrappers::ReceiverStream, Stream};

/// How often, at most, the files are looked at for a change.
pub const RECHECK: Duration = Duration::from_secs(1);
/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for the gRPC server to take them.
const ACCEPT_QUEUE: usize = 64;

/// The files TLS is configured from (the agent's `tls-*` options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// This server's certificate chain, PEM, leaf first.
    pub cert_file: PathBuf,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// CA certificates (PEM, any number per file) a client's certificate must chain to;
    /// empty: clients are not asked for a certificate.
    pub client_ca_files: Vec<PathBuf>,
}

impl TlsFiles {
    /// Whether clients must present a certificate.
    pub fn mutual(&self) -> bool {
        !self.client_ca_files.is_empty()
    }

    fn all(&self) -> impl Iterator<Item = &Path> {
        [self.cert_file.as_path(), self.key_file.as_path()]
            .into_iter()
            .chain(self.client_ca_files.iter().map(PathBuf::as_path))
    }
}

/// Why the TLS files do not make a configuration; each names the option and the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{option} {}: {source}", file.display())]
    Read {
        option: &'static str,
        file: PathBuf,
        source: io::Error,
    },
    #[error("{option} {}: not valid PEM: {detail}", file.display())]
    BadPem {
        option: &'static str,
        file: PathBuf,
        detail: String,
    },
    #[error("{option} {}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it", file.display())]
    NoCertificate { option: &'static str, file: PathBuf },
    #[error("tls-key-file {}: no PEM private key (PKCS#8, PKCS#1 or SEC1) in it", file.display())]
    NoKey { file: PathBuf },
    #[error("tls-key-file {}: unusable private key: {source}", file.display())]
    BadKey {
        file: PathBuf,
        source: rustls::Error,
    },
    #[error(
        "tls-key-file {} is not the private key of the certificate in tls-cert-file {}",
        key_file.display(),
        cert_file.display()
    )]
    KeyMismatch {
        key_file: PathBuf,
        cert_file: PathBuf,
    },
    #[error("tls-cert-file {}: {source}", file.display())]
    BadCertificate {
        file: PathBuf,
        source: rustls::Error,
    },
    #[error("tls-client-ca-files {}: {detail}", file.display())]
    BadClientCa { file: PathBuf, detail: String },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The crypto provider everything here uses (ring, as tonic's `tls-ring`).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(option: &'static str, file: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(file).map_err(|source| TlsError::Read {
        option,
        file: file.to_owned(),
        source,
    })
}

/// Every certificate in a PEM file (other PEM sections are skipped); at least one.
pub fn read_certs(
    option: &'static str,
    file: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(option, file)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem {
            option,
            file: file.to_owned(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            option,
            file: file.to_owned(),
        });
    }
    Ok(certs)
}

/// The first private key in a PEM file.
pub fn read_key(file: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read("tls-key-file", file)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            file: file.to_owned(),
        },
        e => TlsError::BadPem {
            option: "tls-key-file",
            file: file.to_owned(),
            detail: e.to_string(),
        },
    })
}

/// The certificate chain and key, checked to belong together.
pub fn read_identity(files: &TlsFiles) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = read_certs("tls-cert-file", &files.cert_file)?;
    let key = read_key(&files.key_file)?;
    CertifiedKey::from_der(chain, key, &provider())
        .map(Arc::new)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
                key_file: files.key_file.clone(),
                cert_file: files.cert_file.clone(),
            },
            rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
                TlsError::BadCertificate {
                    file: files.cert_file.clone(),
                    source: e,
                }
            }
            e => TlsError::BadKey {
                file: files.key_file.clone(),
                source: e,
            },
        })
}

/// The trust anchors in the client CA files.
pub fn read_client_cas(files: &TlsFiles) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for file in &files.client_ca_files {
        for ca in read_certs("tls-client-ca-files", file)? {
            roots.add(ca).map_err(|e| TlsError::BadClientCa {
                file: file.clone(),
                detail: e.to_string(),
            })?;
        }
    }
    Ok(roots)
}

/// A server configuration from the files as they are now.
pub fn server_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let identity = read_identity(files)?;
    let builder =
        ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = if files.mutual() {
        // Every client must present a certificate chaining to these CAs (no anonymous
        // fallback): Cilium's `hubble-tls-client-ca-files`.
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(read_client_cas(files)?),
            provider(),
        )
        .build()
        .map_err(|e| TlsError::BadClientCa {
            file: files.client_ca_files[0].clone(),
            detail: e.to_string(),
        })?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config =
        builder.with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(identity)));
    // gRPC is HTTP/2 only, and grpc-go (the hubble CLI, Relay) refuses a TLS server that
    // negotiates no ALPN protocol (RFC 7301; gRPC's PROTOCOL-HTTP2.md: "h2").
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// What a file looked like when last read: a rewrite in place or a Kubernetes Secret's
/// symlink swap changes one of these (the metadata is of the file a symlink points to).
type Stamp = Vec<Option<(SystemTime, u64, u64, u64)>>;

fn stamp(files: &TlsFiles) -> Stamp {
    files
        .all()
        .map(|p| {
            std::fs::metadata(p).ok().map(|m| {
                (
                    m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    m.len(),
                    m.dev(),
                    m.ino(),
                )
            })
        })
        .collect()
}

struct Loaded {
    config: Arc<ServerConfig>,
    /// The files' stamp when `config` was built, or when a reload last failed.
    stamp: Stamp,
    checked: Instant,
}

/// The server configuration, rebuilt when its files change (see the module docs).
pub struct ReloadingConfig {
    files: TlsFiles,
    loaded: Mutex<Loaded>,
}

impl std::fmt::Debug for ReloadingConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingConfig")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ReloadingConfig {
    /// Loads the files; an error names what is wrong with which.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let before = stamp(&files);
        let config = Arc::new(server_config(&files)?);
        Ok(Self {
            files,
            loaded: Mutex::new(Loaded {
                config,
                stamp: before,
                checked: Instant::now(),
            }),
        })
    }

    /// The files this configuration comes from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The configuration for a new connection: rebuilt first when a file changed since it
    /// was last read (looked at most every [`RECHECK`]).
    pub fn current(&self) -> Arc<ServerConfig> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if loaded.checked.elapsed() >= RECHECK {
            loaded.checked = Instant::now();
            self.reload_if_changed(&mut loaded);
        }
        loaded.config.clone()
    }

    fn reload_if_changed(&self, loaded: &mut Loaded) {
        // Stamped before reading: a change while reading shows as another change next time.
        let now = stamp(&self.files);
        if now == loaded.stamp {
            return;
        }
        loaded.stamp = now;
        match server_config(&self.files) {
            Ok(c) => {
                loaded.config = Arc::new(c);
                tracing::info!(
                    cert = %self.files.cert_file.display(),
                    "TLS files changed: new connections use the new certificate"
                );
            }
            Err(e) => tracing::warn!(
                error = %e,
                "TLS files changed but do not load; keeping the previous certificate until \
                 they change again"
            ),
        }
    }
}

/// The TLS connections made to `listener`, handshaken with the configuration current when
/// each came in; a failed handshake (a plaintext client, no or a bad client certificate)
/// is logged and dropped. Accepting stops when the stream is dropped (server shutdown).
pub fn incoming(
    listener: TcpListener,
    tls: Arc<ReloadingConfig>,
) -> impl Stream<Item = Result<TlsStream<TcpStream>, io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(ACCEPT_QUEUE);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = tx.closed() => return,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "observer API: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
            let tx = tx.clone();
            // Handshakes run beside the accept loop, so a slow client holds up no other.
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => handshake_failed(peer, &e),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// Logs a failed handshake: at debug a client that left before finishing (TCP probes, port
/// scans); at warn one TLS refused, which is a misconfigured client worth seeing.
fn handshake_failed(peer: std::net::SocketAddr, e: &io::Error) {
    let tls_error = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls_error {
        Some(rustls::Error::InvalidMessage(_)) => tracing::warn!(
            %peer,
            error = %e,
            "TLS handshake failed: a plaintext client? This listener serves TLS \
             (`hubble --tls`, Relay without disable-client-tls)"
        ),
        Some(e) => tracing::warn!(%peer, error = %e, "TLS handshake failed"),
        None => tracing::debug!(%peer, error = %e, "TLS handshake did not complete"),
    }
}

/// A test CA and the certificates it issues, made at test time.
#[cfg(test)]
pub(crate) mod test_pki {
    use std::path::{Path, PathBuf};

    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair,
    };

    /// A CA certificate (PEM) and its key.
    pub struct Ca {
        issuer: CertifiedIssuer<'static, KeyPair>,
    }

    impl Ca {
        pub fn new(name: &str) -> Self {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            Self {
                issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
            }
        }

        pub fn pem(&self) -> String {
            self.issuer.pem()
        }

        /// A certificate for `names`, good for server and client authentication (as
        /// Cilium's certgen issues Hubble's), and its key: both PEM.
        pub fn issue(&self, names: &[&str]) -> (String, String) {
            let key = KeyPair::generate().unwrap();
            let mut params =
                CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                    .unwrap();
            params.distinguished_name.push(
                DnType::CommonName,
                names.first().copied().unwrap_or("client"),
            );
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            let cert = params.signed_by(&key, &self.issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        }

        /// Writes a certificate for `names` and its key as `<stem>.crt` and `<stem>.key`.
        pub fn write(&self, dir: &Path, stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
            let (cert, key) = self.issue(names);
            let (c, k) = (
                dir.join(format!("{stem}.crt")),
                dir.join(format!("{stem}.key")),
            );
            std::fs::write(&c, cert).unwrap();
            std::fs::write(&k, key).unwrap();
            (c, k)
        }
    }

    /// A fresh directory for one test.
    pub fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("flowscope-tls-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use hyper_util::rt::TokioIo;
    use rustls::{pki_types::ServerName, ClientConfig};
    use tonic::transport::{Endpoint, Uri};
    use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};

    use super::{test_pki::*, *};

    const NAME: &str = "node-a.default.hubble-grpc.cilium.io";

    fn files(dir: &Path, ca: &Ca, mutual: bool) -> TlsFiles {
        let (cert_file, key_file) = ca.write(dir, "server", &["*.default.hubble-grpc.cilium.io"]);
        let ca_file = dir.join("ca.crt");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        TlsFiles {
            cert_file,
            key_file,
            client_ca_files: if mutual { vec![ca_file] } else { vec![] },
        }
    }

    #[test]
    fn start_up_errors_name_the_option_and_the_file() {
        let dir = temp_dir("errors");
        let ca = Ca::new("test CA");
        let good = files(&dir, &ca, true);
        ReloadingConfig::load(good.clone()).unwrap();
        let err = |f: TlsFiles| ReloadingConfig::load(f).unwrap_err().to_string();

        let missing = TlsFiles {
            cert_file: dir.join("nope.crt"),
            ..good.clone()
        };
        let e = err(missing);
        assert!(
            e.starts_with("tls-cert-file ") && e.contains("nope.crt") && e.contains("No such file"),
            "{e}"
        );
        // A key where the certificate should be, and the other way round.
        let e = err(TlsFiles {
            cert_file: good.key_file.clone(),
            ..good.clone()
        });
        assert!(
            e.contains("tls-cert-file") && e.contains("no PEM certificate"),
            "{e}"
        );
        let e = err(TlsFiles {
            key_file: good.cert_file.clone(),
            ..good.clone()
        });
        assert!(
            e.contains("tls-key-file") && e.contains("no PEM private key"),
            "{e}"
        );
        // Another certificate's key.
        let (_, other_key) = ca.write(&dir, "other", &["other.example"]);
        let e = err(TlsFiles {
            key_file: other_key,
            ..good.clone()
        });
        assert!(
            e.contains("is not the private key of the certificate"),
            "{e}"
        );
        // A client CA file that holds no certificate.
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let e = err(TlsFiles {
            client_ca_files: vec![empty],
            ..good
        });
        assert!(
            e.starts_with("tls-client-ca-files ") && e.contains("empty.pem"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A gRPC health server on `incoming`, as the API serves it.
    async fn serve(tls: Arc<ReloadingConfig>) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (_, health) = crate::api::health::health_service().await;
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(health)
                .serve_with_incoming(incoming(l, tls)),
        );
        addr
    }

    fn client_config(ca: &Ca, identity: Option<(String, String)>) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.pem().as_bytes()).unwrap())
            .unwrap();
        let b = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let mut c = match identity {
            Some((cert, key)) => b
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
                )
                .unwrap(),
            None => b.with_no_client_auth(),
        };
        c.alpn_protocols = vec![b"h2".to_vec()];
        Arc::new(c)
    }

    /// One health check over TLS: the server's certificate, or why it failed.
    async fn check(
        addr: SocketAddr,
        config: Arc<ClientConfig>,
    ) -> Result<CertificateDer<'static>, String> {
        let seen = Arc::new(Mutex::new(None));
        let seen2 = seen.clone();
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let (config, seen) = (config.clone(), seen2.clone());
                async move {
                    let tcp = TcpStream::connect(addr).await?;
                    let tls = tokio_rustls::TlsConnector::from(config)
                        .connect(ServerName::try_from(NAME).unwrap(), tcp)
                        .await?;
                    *seen.lock().unwrap() =
                        tls.get_ref().1.peer_certificates().map(|c| c[0].clone());
                    Ok::<_, io::Error>(TokioIo::new(tls))
                }
            }))
            .await
            .map_err(|e| format!("{e:?}"))?;
        HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map_err(|e| format!("{e:?}"))?;
        let cert = seen.lock().unwrap().clone().unwrap();
        Ok(cert)
    }

    fn der(pem_file: &Path) -> CertificateDer<'static> {
        CertificateDer::from_pem_file(pem_file).unwrap()
    }

    #[tokio::test]
    async fn mtls_refuses_clients_without_a_certificate_and_picks_up_new_files() {
        let dir = temp_dir("mtls");
        let ca = Ca::new("test CA");
        let f = files(&dir, &ca, true);
        let first = der(&f.cert_file);
        let addr = serve(Arc::new(ReloadingConfig::load(f.clone()).unwrap())).await;

        let relay = || client_config(&ca, Some(ca.issue(&["hubble-relay-client"])));
        assert_eq!(check(addr, relay()).await.unwrap(), first);
        // No client certificate, or one from another CA: refused.
        let e = check(addr, client_config(&ca, None)).await.unwrap_err();
        assert!(e.contains("CertificateRequired"), "{e}");
        let stranger = Ca::new("another CA");
        let e = check(addr, client_config(&ca, Some(stranger.issue(&["x"]))))
            .await
            .unwrap_err();
        assert!(e.contains("UnknownCA"), "{e}");
        // Plaintext gRPC: refused.
        let plain = Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await;
        if let Ok(ch) = plain {
            HealthClient::new(ch)
                .check(HealthCheckRequest::default())
                .await
                .unwrap_err();
        }

        // Rotation: the key first, then the certificate (each write alone does not load).
        let (cert, key) = ca.issue(&["*.default.hubble-grpc.cilium.io"]);
        std::fs::write(&f.key_file, key).unwrap();
        tokio::time::sleep(RECHECK + Duration::from_millis(100)).await;
        assert_eq!(
            check(addr, relay()).await.unwrap(),
            first,
            "half-written: kept"
        );
        std::fs::write(&f.cert_file, cert).unwrap();
        tokio::time::sleep(RECHECK + Duration::from_millis(100)).await;
        let second = der(&f.cert_file);
        assert_ne!(first, second);
        assert_eq!(check(addr, relay()).await.unwrap(), second);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn tls_without_client_cas_serves_anyone() {
        let dir = temp_dir("tls");
        let ca = Ca::new("test CA");
        let f = files(&dir, &ca, false);
        let addr = serve(Arc::new(ReloadingConfig::load(f.clone()).unwrap())).await;
        assert_eq!(
            check(addr, client_config(&ca, None)).await.unwrap(),
            der(&f.cert_file)
        );
        // A client that trusts another CA refuses the server.
        let e = check(addr, client_config(&Ca::new("another CA"), None))
            .await
            .unwrap_err();
        assert!(e.contains("UnknownIssuer"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
