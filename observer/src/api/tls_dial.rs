//! The agent as a TLS client of the other agents: peer discovery asks each address the peer
//! service resolves to for its node name (`GetNodes`), and when this agent's listener serves
//! TLS, so do theirs (one DaemonSet, one configuration).
//!
//! - The name checked in a peer's certificate is the one Hubble Relay checks when it dials the
//!   peer service (Cilium's `TLSServerName(PeerServiceName, cluster)`,
//!   `hubble-peer.<cluster>.hubble-grpc.cilium.io`), which the agents' certificates carry
//!   when issued the Cilium way (`*.<cluster>.hubble-grpc.cilium.io`): before asking, the
//!   peer's own node name is what is not known yet.
//! - Under mTLS (client CA files given) the peers' certificates are checked against those CAs
//!   and this agent presents its own certificate as its client certificate, so it must be
//!   valid for client authentication too (no extended key usage, or `clientAuth` beside
//!   `serverAuth`). Without client CA files this agent has no CA to check peers against:
//!   the handshake is still signed by the key of the certificate presented, but the chain is
//!   not checked. What is learnt that way is only a name to announce; Relay then dials that
//!   peer and checks its certificate for that name against its own CA.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use hyper_util::rt::TokioIo;
use rustls::{
    client::{
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
        WebPkiServerVerifier,
    },
    pki_types::{CertificateDer, ServerName, UnixTime},
    ClientConfig, DigitallySignedStruct, SignatureScheme,
};
use tonic::transport::{Channel, Endpoint, Uri};

use super::{
    peer,
    tls::{provider, read_client_cas, read_identity, TlsError, TlsFiles},
};

/// The client configuration for dialling peers, from the files as they are now.
pub fn client_config(files: &TlsFiles) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let mut config = if files.mutual() {
        let verifier = WebPkiServerVerifier::builder_with_provider(
            Arc::new(read_client_cas(files)?),
            provider,
        )
        .build()
        .map_err(|e| TlsError::BadClientCa {
            file: files.client_ca_files[0].clone(),
            detail: e.to_string(),
        })?;
        builder
            .with_webpki_verifier(verifier)
            .with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(
                read_identity(files)?,
            )))
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SignedByPresentedKey(provider)))
            .with_no_client_auth()
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// A gRPC channel to the agent at `addr` over TLS.
pub async fn connect(
    addr: SocketAddr,
    files: &TlsFiles,
    timeout: Duration,
) -> Result<Channel, String> {
    let config = Arc::new(client_config(files).map_err(|e| e.to_string())?);
    let name = ServerName::try_from(peer::tls_server_name("hubble-peer", super::CLUSTER_NAME))
        .map_err(|e| e.to_string())?;
    // The URI only names the authority; the connector below makes the connection.
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(timeout)
        .timeout(timeout);
    endpoint
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let (config, name) = (config.clone(), name.clone());
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
            let mut msg = e.to_string();
            let mut cur: &dyn std::error::Error = &e;
            while let Some(next) = cur.source() {
                msg = format!("{msg}: {next}");
                cur = next;
            }
            msg
        })
}

/// Checks the handshake signature against the presented certificate's key, not the chain
/// (see the module docs for why that is enough here).
#[derive(Debug)]
struct SignedByPresentedKey(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for SignedByPresentedKey {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
