//! The agent's configuration: one struct, read from a TOML file (`--config`), then overridden
//! by flags. Unknown keys are errors, so a typo never silently falls back to a default.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::agent::{CaptureKind, Cidr, L4Mode, Output, TcAttach};

/// Everything `flowscope agent` can be told. Defaults are what runs with no flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct AgentConfig {
    /// Interfaces to capture on; empty means every interface that is up, and new ones.
    pub interfaces: Vec<String>,
    /// Capture path: "tc", "socket" or "afpacket"; unset means tc with fallbacks.
    pub capture: Option<CaptureKind>,
    /// How TC programs attach: "auto", "tcx" or "clsact".
    pub tc_attach: TcAttach,
    /// Payload bytes kept per packet after the TCP/UDP header (1..=8000).
    pub snaplen: u32,
    /// Bytes of the kernel ring buffer (rounded up to a power of two).
    pub ring_size: u32,
    /// Message bodies of at least this many bytes that no decoder reads (HTTP/1 bodies of a
    /// known length, RFC 9112 §6) are captured as their TCP segments' headers only, and so
    /// are TLS ciphertext and undecoded protocols after their first 64 KiB; 0: every segment
    /// up to `snaplen`. Kernel capture paths (tc, socket) only.
    pub body_skip_min_bytes: u64,
    /// Capture only these ports (either side); empty keeps all.
    pub ports: Vec<u16>,
    /// Never capture these ports (either side).
    pub exclude_ports: Vec<u16>,
    /// Capture only these prefixes (source or destination), e.g. "10.0.0.0/8"; empty keeps all.
    pub cidrs: Vec<String>,
    /// Which packets become L3/L4 flow records: "every-packet", "control-only" (SYN/FIN/RST;
    /// the default, like Hubble's default monitor aggregation) or "off". L7 flows and spans
    /// come regardless. Every packet as a record costs ~3 records per HTTP exchange.
    pub l4_records: L4Mode,
    /// Output on stdout: "compact" or "json".
    pub output: Output,
    /// Keep the terminal's own SSH connection in the capture.
    pub include_own_ssh: bool,
    /// Leave out every flow and span with this agent at either end (its metrics and API
    /// listeners, its OTLP exports). By default they are reported like any process's, with
    /// `agent` set on the process so they can be told apart.
    pub exclude_self: bool,
    /// Where the Observer API listens: `unix:///path`.
    pub listen: String,
    /// Also serve the Observer API on this TCP address (e.g. "0.0.0.0:4244" for Hubble Relay),
    /// over TLS (`tls-cert-file`, `tls-key-file`) unless `disable-tls`.
    pub listen_tcp: Option<String>,
    /// `HOST:PORT` that resolves to every agent's TCP listener (a headless Service): the
    /// other agents `peer.Peer/Notify` announces to Hubble Relay. Unset: this node only.
    pub peer_service: Option<String>,
    /// Flows kept for `flowscope observe --last` (the ring the API serves).
    pub max_flows: usize,
    /// Node name on every flow; unset: $FLOWSCOPE_NODE_NAME, $NODE_NAME, then the hostname.
    pub node_name: Option<String>,
    /// How sockets are tied to processes: "auto" (probe the kernel, take the best that loads),
    /// "kprobe", "cgroup+tp_btf", "tp_btf", "proc-only" (no kernel programs) or "off".
    pub attribution: String,
    /// The host's procfs, for sockets older than the agent (in a container: where the host's
    /// /proc is mounted, e.g. /host/proc).
    pub proc_root: std::path::PathBuf,
    /// TLS on `listen-tcp`: this server's certificate chain, PEM (Cilium's
    /// `hubble-tls-cert-file`). Re-read when it changes.
    pub tls_cert_file: Option<PathBuf>,
    /// Its private key, PEM (Cilium's `hubble-tls-key-file`).
    pub tls_key_file: Option<PathBuf>,
    /// mTLS: CA certificates (PEM) a client's certificate must chain to; a client without
    /// one is refused (Cilium's `hubble-tls-client-ca-files`). Empty: no client certificate.
    pub tls_client_ca_files: Vec<PathBuf>,
    /// Serve `listen-tcp` in plaintext (Cilium's `hubble-disable-tls`): anyone who reaches
    /// the port reads every flow.
    pub disable_tls: bool,
    /// The TLS server name this node announces to Hubble Relay (`peer.Peer/Notify`), the name
    /// its certificate must carry; unset: `<node-name>.default.hubble-grpc.cilium.io`, as
    /// Cilium (dots in the node name become dashes).
    pub tls_server_name: Option<String>,
    /// Report the packets the kernel drops (kfree_skb with its drop reason) as DROPPED
    /// flows, where the kernel allows the program (BTF, 5.17+).
    pub drops: bool,
    /// Most drop reports per second per CPU; drops beyond it are counted
    /// (`kernel_drops_rate_limited`), not reported.
    pub drops_rate_per_cpu: u64,
    /// OTLP span export, `--print-spans` and Prometheus metrics (the `[export]` table).
    pub export: crate::export::ExportConfig,
    /// The kubelet's pod log directory (the host's /var/log/pods, mounted read-only in a
    /// container): its `<namespace>_<pod>_<uid>` entries name the pods found in cgroup paths.
    pub pods_log_dir: std::path::PathBuf,
    /// Most (address, name) pairs remembered from DNS answers for `*_names` on flows.
    pub dns_names_max_entries: usize,
    /// Shortest time, in seconds, a DNS answer's names stay on flows (answers with a shorter
    /// TTL are kept this long: connections outlive short TTLs).
    pub dns_names_min_ttl: u64,
    /// Processes whose syscalls become child spans of the requests they serve: `pid:N`,
    /// `comm:NAME` or a bare NAME (the comm of the process's main thread, also matching
    /// processes started later). Empty (the default): off.
    pub syscall_spans: Vec<String>,
    /// Most syscall child spans per request; the rest are folded into counts on the span.
    pub syscall_span_children: usize,
    /// Engine worker threads decoding in parallel, connections spread by a hash of their
    /// 5-tuple; 0 picks from the CPUs (one per 8, at most 8: see `workers::auto_workers`).
    pub workers: usize,
    /// Read TLS plaintext at OpenSSL (`libssl.so.*`) with uprobes and decode HTTPS, HTTP/2
    /// and gRPC over TLS from it (issue 19); where the kernel refuses the probes, TLS flows
    /// stay undecoded and are counted.
    pub tls_plaintext: bool,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            interfaces: Vec::new(),
            capture: None,
            tc_attach: TcAttach::Auto,
            snaplen: 512,
            ring_size: 4 << 20,
            body_skip_min_bytes: 64 * 1024,
            ports: Vec::new(),
            exclude_ports: Vec::new(),
            cidrs: Vec::new(),
            l4_records: L4Mode::ControlOnly,
            output: Output::Compact,
            include_own_ssh: false,
            exclude_self: false,
            listen: "unix:///var/run/flowscope/observer.sock".into(),
            listen_tcp: None,
            peer_service: None,
            max_flows: crate::api::store::DEFAULT_MAX_FLOWS,
            node_name: None,
            attribution: "auto".into(),
            proc_root: "/proc".into(),
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_files: Vec::new(),
            disable_tls: false,
            tls_server_name: None,
            drops: true,
            drops_rate_per_cpu: 1000,
            export: crate::export::ExportConfig::default(),
            pods_log_dir: crate::api::pods::DEFAULT_PODS_LOG_DIR.into(),
            dns_names_max_entries: crate::api::dns_names::DEFAULT_MAX_ENTRIES,
            dns_names_min_ttl: crate::api::dns_names::DEFAULT_MIN_TTL_SECS,
            syscall_spans: Vec::new(),
            syscall_span_children: 32,
            workers: 0,
            tls_plaintext: true,
        }
    }
}

impl AgentConfig {
    /// The processes `syscall-spans` selects.
    pub fn syscall_selection(&self) -> Result<ebpf_kprobe::syscalls::SyscallSelection> {
        let mut sel = ebpf_kprobe::syscalls::SyscallSelection::default();
        for s in &self.syscall_spans {
            let bad = |why: &str| anyhow::anyhow!("key `syscall-spans`: {s:?}: {why}");
            match s.split_once(':') {
                Some(("pid", n)) => sel
                    .pids
                    .push(n.parse().map_err(|_| bad("pid:N needs a process id"))?),
                Some(("comm", c)) if !c.is_empty() => sel.comms.push(c.to_string()),
                Some(_) => return Err(bad("use pid:N, comm:NAME or a process name")),
                None if !s.is_empty() => sel.comms.push(s.clone()),
                None => return Err(bad("empty")),
            }
        }
        if sel.comms.len() > ebpf_kprobe::syscalls::MAX_COMMS
            || sel.pids.len() > ebpf_kprobe::syscalls::MAX_PIDS
        {
            anyhow::bail!(
                "key `syscall-spans`: at most {} names and {} pids",
                ebpf_kprobe::syscalls::MAX_COMMS,
                ebpf_kprobe::syscalls::MAX_PIDS
            );
        }
        if !self.syscall_spans.is_empty() && self.syscall_span_children == 0 {
            anyhow::bail!("key `syscall-span-children`: must be at least 1");
        }
        Ok(sel)
    }

    /// Reads and checks a TOML file. Errors name the file, the key and the line.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        Self::from_toml(&text).with_context(|| format!("config file {}", path.display()))
    }

    /// Parses and checks TOML text.
    pub fn from_toml(text: &str) -> Result<Self> {
        let cfg: AgentConfig =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Engine worker threads to run: `workers`, or for 0 one per 8 CPUs this process may use.
    /// TLS plaintext goes to the worker of its connection's packets (flows::shard).
    pub fn engine_workers(&self) -> usize {
        match self.workers {
            0 => crate::workers::auto_workers(
                std::thread::available_parallelism().map_or(1, |n| n.get()),
            ),
            n => n,
        }
    }

    /// Checks values serde can't: ranges and CIDR syntax, naming the key.
    pub fn validate(&self) -> Result<()> {
        if !(1..=8000).contains(&self.snaplen) {
            anyhow::bail!("key `snaplen`: {} is outside 1..=8000", self.snaplen);
        }
        if self.ring_size < 4096 {
            anyhow::bail!(
                "key `ring-size`: {} is below one page (4096)",
                self.ring_size
            );
        }
        for c in &self.cidrs {
            c.parse::<Cidr>()
                .map_err(|e| anyhow::anyhow!("key `cidrs`: {e}"))?;
        }
        self.unix_socket()?;
        if let Some(t) = &self.listen_tcp {
            t.parse::<std::net::SocketAddr>()
                .map_err(|e| anyhow::anyhow!("key `listen-tcp`: {t:?}: {e}"))?;
        }
        self.validate_tls()?;
        if let Some(p) = &self.peer_service {
            let port = p.rsplit_once(':').map(|(_, port)| port.parse::<u16>());
            if !matches!(port, Some(Ok(_))) {
                anyhow::bail!("key `peer-service`: {p:?} is not HOST:PORT");
            }
        }
        self.attribution_method()?;
        if self.drops_rate_per_cpu == 0 {
            anyhow::bail!("key `drops-rate-per-cpu`: must be at least 1 (or set drops = false)");
        }
        if self.workers > 256 {
            anyhow::bail!("key `workers`: {} is more than 256", self.workers);
        }
        if self.max_flows == 0 {
            anyhow::bail!("key `max-flows`: must be at least 1");
        }
        self.syscall_selection()?;
        if self.dns_names_max_entries == 0 {
            anyhow::bail!("key `dns-names-max-entries`: must be at least 1");
        }
        self.export.validate()?;
        if self.interfaces.iter().any(String::is_empty) {
            anyhow::bail!("key `interfaces`: an interface name is empty");
        }
        Ok(())
    }

    /// TLS on the TCP listener is on unless plaintext is asked for, and its keys agree.
    fn validate_tls(&self) -> Result<()> {
        let (cert, key) = (&self.tls_cert_file, &self.tls_key_file);
        if cert.is_some() != key.is_some() {
            anyhow::bail!(
                "keys `tls-cert-file` and `tls-key-file`: give both (the certificate chain and \
                 its private key) or neither"
            );
        }
        if self
            .tls_client_ca_files
            .iter()
            .any(|p| p.as_os_str().is_empty())
        {
            anyhow::bail!("key `tls-client-ca-files`: a file name is empty");
        }
        if !self.tls_client_ca_files.is_empty() && cert.is_none() {
            anyhow::bail!(
                "key `tls-client-ca-files`: mTLS needs the server's own certificate too: set \
                 `tls-cert-file` and `tls-key-file`"
            );
        }
        if self.tls_server_name.is_some() && cert.is_none() {
            anyhow::bail!("key `tls-server-name`: only announced with TLS: set `tls-cert-file` and `tls-key-file`");
        }
        if let Some(n) = &self.tls_server_name {
            rustls::pki_types::ServerName::try_from(n.as_str())
                .map_err(|_| anyhow::anyhow!("key `tls-server-name`: {n:?} is not a DNS name"))?;
        }
        if self.disable_tls && cert.is_some() {
            anyhow::bail!(
                "key `disable-tls` contradicts `tls-cert-file`: drop one (TLS files given: TLS; \
                 `disable-tls`: plaintext)"
            );
        }
        match (&self.listen_tcp, cert) {
            (Some(addr), None) if !self.disable_tls => anyhow::bail!(
                "key `listen-tcp` ({addr}): the Observer API on TCP is served over TLS, as Hubble \
                 Relay expects: set `tls-cert-file` and `tls-key-file` (--tls-cert-file, \
                 --tls-key-file; add `tls-client-ca-files` for mTLS), or `disable-tls = true` \
                 (--disable-tls) for plaintext"
            ),
            (None, Some(_)) => anyhow::bail!(
                "key `tls-cert-file`: TLS is for the TCP listener, and `listen-tcp` is not set"
            ),
            _ => Ok(()),
        }
    }

    /// The TLS files of the TCP listener (validated before); `None`: plaintext or no listener.
    pub fn tls_files(&self) -> Option<crate::api::tls::TlsFiles> {
        Some(crate::api::tls::TlsFiles {
            cert_file: self.tls_cert_file.clone()?,
            key_file: self.tls_key_file.clone()?,
            client_ca_files: self.tls_client_ca_files.clone(),
        })
    }

    /// How the API resolves the ends of flows: pods from this host's cgroup v2 hierarchy and
    /// `pods-log-dir`, DNS names per `dns-names-*`.
    pub fn endpoints_config(&self) -> crate::api::endpoints::EndpointsConfig {
        crate::api::endpoints::EndpointsConfig {
            cgroup_root: ebpf_kprobe::cgroup::cgroup2_mount(),
            pods_log_dir: self.pods_log_dir.clone(),
            dns_names_max_entries: self.dns_names_max_entries,
            dns_names_min_ttl_secs: self.dns_names_min_ttl,
        }
    }

    /// The Observer API's unix socket path, from `listen`.
    pub fn unix_socket(&self) -> Result<std::path::PathBuf> {
        match self.listen.strip_prefix("unix://") {
            Some(p) if p.starts_with('/') => Ok(p.into()),
            _ => anyhow::bail!(
                "key `listen`: {:?} is not unix:///absolute/path",
                self.listen
            ),
        }
    }

    /// `None` for "off"; `Some(None)` for "auto"; `Some(Some(m))` for a forced method.
    pub fn attribution_method(&self) -> Result<Option<Option<ebpf_kprobe::Method>>> {
        use ebpf_kprobe::Method;
        Ok(match self.attribution.as_str() {
            "off" => None,
            "auto" => Some(None),
            "kprobe" => Some(Some(Method::Kprobe)),
            "cgroup+tp_btf" => Some(Some(Method::CgroupTpBtf)),
            "tp_btf" => Some(Some(Method::TpBtf)),
            "proc-only" => Some(Some(Method::ProcOnly)),
            other => anyhow::bail!(
                "key `attribution`: {other:?} is not one of auto, kprobe, cgroup+tp_btf, tp_btf, proc-only, off"
            ),
        })
    }

    /// The node name flows carry.
    pub fn node_name(&self) -> String {
        self.node_name
            .clone()
            .or_else(|| {
                std::env::var("FLOWSCOPE_NODE_NAME")
                    .ok()
                    .filter(|n| !n.is_empty())
            })
            .unwrap_or_else(crate::api::default_node_name)
    }

    /// The CIDR filters, parsed (validated before).
    pub fn parsed_cidrs(&self) -> Vec<Cidr> {
        self.cidrs.iter().filter_map(|c| c.parse().ok()).collect()
    }

    /// The whole configuration as TOML, every key with its value (`flowscope agent --print-config`).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("config serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_toml() {
        let d = AgentConfig::default();
        assert_eq!(AgentConfig::from_toml(&d.to_toml()).unwrap(), d);
        assert_eq!(AgentConfig::from_toml("").unwrap(), d);
    }

    #[test]
    fn a_full_file_round_trips() {
        let text = r#"
            interfaces = ["eth0", "lo"]
            capture = "socket"
            tc-attach = "clsact"
            snaplen = 1024
            ring-size = 8388608
            ports = [80, 443]
            exclude-ports = [22]
            cidrs = ["198.18.0.0/15", "2001:db8::/32"]
            output = "json"
            l4-records = "control-only"
            include-own-ssh = true
            listen = "unix:///tmp/fs.sock"
            listen-tcp = "127.0.0.1:4244"
            tls-cert-file = "/etc/flowscope/tls/server.crt"
            tls-key-file = "/etc/flowscope/tls/server.key"
            tls-client-ca-files = ["/etc/flowscope/tls/client-ca.crt"]
            tls-server-name = "node-a.prod.hubble-grpc.cilium.io"
            peer-service = "flowscope-peer.flowscope.svc.cluster.local:4244"
            max-flows = 100
            node-name = "node-a"
            attribution = "proc-only"
            pods-log-dir = "/host/var/log/pods"
            dns-names-max-entries = 1000
            dns-names-min-ttl = 5
        "#;
        let c = AgentConfig::from_toml(text).unwrap();
        assert_eq!(c.interfaces, ["eth0", "lo"]);
        assert_eq!(c.capture, Some(CaptureKind::Socket));
        assert_eq!(c.tc_attach, TcAttach::Clsact);
        assert_eq!(c.snaplen, 1024);
        assert_eq!(c.parsed_cidrs().len(), 2);
        assert_eq!(
            c.unix_socket().unwrap(),
            std::path::PathBuf::from("/tmp/fs.sock")
        );
        assert_eq!(c.node_name(), "node-a");
        let e = c.endpoints_config();
        assert_eq!(
            (
                e.pods_log_dir.to_str(),
                e.dns_names_max_entries,
                e.dns_names_min_ttl_secs
            ),
            (Some("/host/var/log/pods"), 1000, 5)
        );
        assert_eq!(
            c.peer_service.as_deref(),
            Some("flowscope-peer.flowscope.svc.cluster.local:4244")
        );
        let tls = c.tls_files().unwrap();
        assert_eq!(
            tls.client_ca_files,
            [PathBuf::from("/etc/flowscope/tls/client-ca.crt")]
        );
        assert!(tls.mutual());
        assert_eq!(AgentConfig::from_toml(&c.to_toml()).unwrap(), c);
    }

    #[test]
    fn the_tcp_listener_is_tls_unless_plaintext_is_asked_for() {
        let e = AgentConfig::from_toml("listen-tcp = \"0.0.0.0:4244\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("listen-tcp")
                && e.contains("--tls-cert-file")
                && e.contains("--disable-tls"),
            "{e}"
        );
        let plain =
            AgentConfig::from_toml("listen-tcp = \"0.0.0.0:4244\"\ndisable-tls = true").unwrap();
        assert!(plain.disable_tls && plain.tls_files().is_none());
        let tls = AgentConfig::from_toml(
            "listen-tcp = \"0.0.0.0:4244\"\ntls-cert-file = \"/c\"\ntls-key-file = \"/k\"",
        )
        .unwrap();
        let files = tls.tls_files().unwrap();
        assert!(!files.mutual());
        assert_eq!(files.key_file, PathBuf::from("/k"));
        // The files are read when the agent starts (api/tls.rs), not here.
    }

    #[test]
    fn tls_keys_that_do_not_fit_together_are_named() {
        let l = "listen-tcp = \"0.0.0.0:4244\"\n";
        for (text, want) in [
            ("tls-cert-file = \"/c\"", "tls-key-file"),
            ("tls-key-file = \"/k\"", "tls-cert-file"),
            (
                "disable-tls = true\ntls-client-ca-files = [\"/ca\"]",
                "tls-client-ca-files",
            ),
            (
                "disable-tls = true\ntls-cert-file = \"/c\"\ntls-key-file = \"/k\"",
                "contradicts",
            ),
            (
                "tls-cert-file = \"/c\"\ntls-key-file = \"/k\"\ntls-client-ca-files = [\"\"]",
                "tls-client-ca-files",
            ),
            (
                "tls-cert-file = \"/c\"\ntls-key-file = \"/k\"\ntls-server-name = \"not a name\"",
                "tls-server-name",
            ),
            (
                "disable-tls = true\ntls-server-name = \"a.b\"",
                "tls-server-name",
            ),
        ] {
            let e = AgentConfig::from_toml(&format!("{l}{text}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
        // TLS files without the TCP listener they are for.
        let e = AgentConfig::from_toml("tls-cert-file = \"/c\"\ntls-key-file = \"/k\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("listen-tcp"), "{e}");
    }

    #[test]
    fn tls_plaintext_goes_with_any_number_of_engine_workers() {
        let d = AgentConfig::default();
        assert!(d.tls_plaintext);
        assert_eq!(
            d.engine_workers(),
            crate::workers::auto_workers(
                std::thread::available_parallelism().map_or(1, |n| n.get())
            ),
            "auto: TLS plaintext does not force one worker"
        );
        let c = AgentConfig::from_toml("workers = 2").unwrap();
        assert!(c.tls_plaintext);
        assert_eq!(c.engine_workers(), 2);
    }

    #[test]
    fn syscall_spans_are_off_by_default_and_select_by_pid_or_name() {
        let d = AgentConfig::default();
        assert!(d.syscall_selection().unwrap().pids.is_empty());
        let c = AgentConfig::from_toml(
            "syscall-spans = [\"python3\", \"pid:42\", \"comm:nginx\"]\nsyscall-span-children = 8",
        )
        .unwrap();
        let sel = c.syscall_selection().unwrap();
        assert_eq!(sel.pids, [42]);
        assert_eq!(sel.comms, ["python3", "nginx"]);
        assert_eq!(c.syscall_span_children, 8);
        for bad in ["pid:x", "uid:3", ""] {
            let e = AgentConfig::from_toml(&format!("syscall-spans = [\"{bad}\"]"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("syscall-spans"), "{bad}: {e}");
        }
    }

    #[test]
    fn kernel_drops_on_by_default_and_off_by_key() {
        let d = AgentConfig::default();
        assert!(d.drops);
        assert_eq!(d.drops_rate_per_cpu, 1000);
        let c = AgentConfig::from_toml("drops = false\ndrops-rate-per-cpu = 50").unwrap();
        assert!(!c.drops);
        assert_eq!(c.drops_rate_per_cpu, 50);
        let e = AgentConfig::from_toml("drops-rate-per-cpu = 0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("drops-rate-per-cpu"), "{e}");
    }

    #[test]
    fn unknown_keys_are_rejected_by_name() {
        let e = AgentConfig::from_toml("snaplenn = 10")
            .unwrap_err()
            .to_string();
        assert!(e.contains("snaplenn"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let e = AgentConfig::from_toml("snaplen = 0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("snaplen"), "{e}");
        let e = AgentConfig::from_toml("cidrs = [\"10.0.0.0/99\"]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cidrs") && e.contains("10.0.0.0/99"), "{e}");
        let e = AgentConfig::from_toml("capture = \"xdp\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("capture") && e.contains("xdp"), "{e}");
        let e = AgentConfig::from_toml("ports = [70000]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ports"), "{e}");
        let e = AgentConfig::from_toml("peer-service = \"flowscope-peer\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("peer-service") && e.contains("HOST:PORT"), "{e}");
    }
}
