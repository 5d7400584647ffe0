//! End-to-end: the Observer API's TCP listener over TLS with client certificates (mTLS), as
//! Hubble Relay dials Cilium's agents — against the real agent, with a test CA made at test
//! time (rcgen).
//!
//! The gRPC client is tests/python/tls_client.py (grpcio with the CA as root certificates and
//! Relay's client certificate; the server name checked is Cilium's
//! `<node>.default.hubble-grpc.cilium.io`); the certificate the server presents is read with
//! `openssl s_client`. The certificate files are replaced on disk while the agent runs, the way
//! a Kubernetes Secret is updated (new files renamed into place), and new connections must get
//! the new certificate with no restart. Clients without a certificate, with one from another
//! CA, or in plaintext are refused; a certificate file that is missing stops the agent at
//! start-up with the option and file named.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use flowscope_e2e::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use serde_json::Value;

const NODE: &str = "tls-e2e-node";
const PORT: u16 = 4244;
const SERVER_NAME: &str = "tls-e2e-node.default.hubble-grpc.cilium.io";

fn python() -> String {
    std::env::var("FLOWSCOPE_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".to_string())
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(name)
}

struct Ca(CertifiedIssuer<'static, KeyPair>);

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Ca(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
    }

    /// Writes `<stem>.crt` (for `names`, server and client auth) and `<stem>.key`.
    fn issue(&self, dir: &Path, stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.0).unwrap();
        let (c, k) = (
            dir.join(format!("{stem}.crt")),
            dir.join(format!("{stem}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }
}

/// tls_client.py's calls from the client namespace, by call name.
fn calls(link: &Link, args: &str) -> Vec<Value> {
    let out = link.client.exec_any(&format!(
        "{} {} call --server {SERVER_V4}:{PORT} --timeout 5 {args}",
        python(),
        script("tls_client.py").display()
    ));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tls_client.py {args}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = stdout.lines().map(String::from).collect();
    let v = json_lines(&lines);
    assert_eq!(v.len(), 4, "{v:#?}");
    v
}

fn assert_all_refused(out: &[Value], what: &str) {
    for c in out {
        assert_eq!(c["error"], "UNAVAILABLE", "{what}: {c}");
    }
}

/// SHA-256 fingerprint of the certificate in a PEM file, or of the one the server presents.
fn fingerprint_of_file(f: &Path) -> String {
    sh(&format!(
        "openssl x509 -in {} -noout -fingerprint -sha256",
        f.display()
    ))
}

fn fingerprint_served(link: &Link, ca: &Path, cert: &Path, key: &Path) -> String {
    link.client.exec(&format!(
        "openssl s_client -connect {SERVER_V4}:{PORT} -servername {SERVER_NAME} -CAfile {} \
         -cert {} -key {} -alpn h2 -verify_return_error </dev/null 2>/dev/null \
         | openssl x509 -noout -fingerprint -sha256",
        ca.display(),
        cert.display(),
        key.display()
    ))
}

#[test]
fn hubble_clients_reach_the_agent_over_mtls_and_get_rotated_certificates() {
    require_root();
    require_tool("openssl");
    let check = sh_any(&format!(
        "{} {} check",
        python(),
        script("hubble_client.py").display()
    ));
    assert!(
        check.status.success(),
        "the Python gRPC client cannot run with {}: {}: install Debian's python3-grpcio and \
         python3-grpc-tools (./dev.sh test does), or set $FLOWSCOPE_PYTHON",
        python(),
        String::from_utf8_lossy(&check.stderr)
    );
    let link = Link::new();
    let tmp = TempDir::new();
    let pki = tmp.0.join("tls");
    std::fs::create_dir_all(&pki).unwrap();
    let ca = Ca::new("flowscope e2e CA");
    let ca_file = pki.join("ca.crt");
    std::fs::write(&ca_file, ca.0.pem()).unwrap();
    // The agent's certificate as Cilium issues Hubble's: one wildcard for every node.
    let (server_crt, server_key) = ca.issue(&pki, "server", &["*.default.hubble-grpc.cilium.io"]);
    let (relay_crt, relay_key) = ca.issue(&pki, "relay", &["hubble-relay-client"]);
    let stranger = Ca::new("another CA");
    let (stranger_crt, stranger_key) = stranger.issue(&pki, "stranger", &["hubble-relay-client"]);
    let stranger_ca = pki.join("stranger-ca.crt");
    std::fs::write(&stranger_ca, stranger.0.pem()).unwrap();

    let sock = tmp.0.join("run/observer.sock");
    let mut agent = link.server.spawn(&format!(
        "env FLOWSCOPE_NODE_NAME={NODE} {} agent -i {} --listen unix://{} \
         --listen-tcp {SERVER_V4}:{PORT} --tls-cert-file {} --tls-key-file {} \
         --tls-client-ca-files {} -o none",
        flowscope_bin().display(),
        link.server_if,
        sock.display(),
        server_crt.display(),
        server_key.display(),
        ca_file.display()
    ));
    // The API listens once the capture is attached (wait_stderr consumes the lines it reads,
    // and "Ctrl-C to stop" may come before or after this one).
    agent.wait_stderr(
        "mTLS: client certificates required",
        Duration::from_secs(30),
    );

    let tls = |crt: &Path, key: &Path, ca: &Path| {
        format!(
            "--ca {} --server-name {SERVER_NAME} --cert {} --key {}",
            ca.display(),
            crt.display(),
            key.display()
        )
    };
    let relay = tls(&relay_crt, &relay_key, &ca_file);

    // Relay's view: health, status, this node announced with its TLS server name, flows.
    let out = calls(&link, &relay);
    assert_eq!(out[0]["status"], "SERVING", "{out:#?}");
    assert!(
        out[1]["version"]
            .as_str()
            .unwrap_or("")
            .starts_with("flowscope"),
        "{out:#?}"
    );
    assert_eq!(out[2]["name"], NODE, "{out:#?}");
    assert_eq!(out[2]["address"], format!("{SERVER_V4}:{PORT}"), "{out:#?}");
    assert_eq!(out[2]["tls_server_name"], SERVER_NAME, "{out:#?}");
    assert!(out[3].get("flows").is_some(), "{out:#?}");

    // flowscope's own client, with the hubble CLI's flags.
    let observed = link.client.exec(&format!(
        "{} observe --server {SERVER_V4}:{PORT} --tls-ca-cert-files {} --tls-client-cert-file {} \
         --tls-client-key-file {} --tls-server-name {SERVER_NAME} --last 5 -o json",
        flowscope_bin().display(),
        ca_file.display(),
        relay_crt.display(),
        relay_key.display()
    ));
    let observed: Vec<String> = observed.lines().map(String::from).collect();
    let observed_flows = json_lines(&observed);
    assert!(
        !observed_flows.is_empty()
            && observed_flows
                .iter()
                .all(|f| f["node_name"] == NODE || f["flow"]["node_name"] == NODE),
        "{observed:?}"
    );

    // Refused: no client certificate, one from another CA, plaintext; and a client that
    // trusts another CA refuses the agent.
    let no_cert = format!("--ca {} --server-name {SERVER_NAME}", ca_file.display());
    assert_all_refused(&calls(&link, &no_cert), "no client certificate");
    assert_all_refused(
        &calls(&link, &tls(&stranger_crt, &stranger_key, &ca_file)),
        "a certificate from another CA",
    );
    assert_all_refused(&calls(&link, "--plaintext"), "plaintext");
    assert_all_refused(
        &calls(&link, &tls(&relay_crt, &relay_key, &stranger_ca)),
        "a client trusting another CA",
    );

    let first = fingerprint_of_file(&server_crt);
    assert_eq!(
        fingerprint_served(&link, &ca_file, &relay_crt, &relay_key),
        first
    );

    // Rotation as a Secret update does it: new files renamed into place, no restart.
    let next = pki.join("next");
    std::fs::create_dir_all(&next).unwrap();
    let (new_crt, new_key) = ca.issue(&next, "server", &["*.default.hubble-grpc.cilium.io"]);
    std::fs::rename(&new_key, &server_key).unwrap();
    std::fs::rename(&new_crt, &server_crt).unwrap();
    let second = fingerprint_of_file(&server_crt);
    assert_ne!(first, second);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let served = fingerprint_served(&link, &ca_file, &relay_crt, &relay_key);
        if served == second {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still serving the old certificate: {served} (want {second}); agent: {}",
            agent.stderr().join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    agent.wait_stderr("TLS files changed", Duration::from_secs(5));
    let out = calls(&link, &relay);
    assert_eq!(out[0]["status"], "SERVING", "after rotation: {out:#?}");
    // The earlier connections are flows in the ring now.
    assert!(out[3]["flows"].as_u64().unwrap_or(0) > 0, "{out:#?}");
    assert!(
        Path::new(&format!("/proc/{}", agent.pid())).exists(),
        "the agent kept running"
    );
    drop(agent);

    // A missing certificate file stops the agent at start-up, naming the option and file.
    let out = link.server.exec_any(&format!(
        "timeout 30 {} agent -i {} --listen unix://{} --listen-tcp {SERVER_V4}:{PORT} \
         --tls-cert-file {}/missing.crt --tls-key-file {} -o none",
        flowscope_bin().display(),
        link.server_if,
        sock.display(),
        pki.display(),
        server_key.display()
    ));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("tls-cert-file") && err.contains("missing.crt"),
        "{err}"
    );
}
