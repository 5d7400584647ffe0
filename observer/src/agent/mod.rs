//! `flowscope agent`: capture on this node, decode, print (later: serve and export).

mod clock;
mod drops;
#[cfg(test)]
mod exchange_cost;
mod listen_drops;
mod pace;
mod pipeline;
mod preflight;
mod privileges;
mod source;
mod syscall_spans;
mod syscalls;
mod tls;

use std::{net::IpAddr, path::PathBuf, str::FromStr};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

use crate::config::AgentConfig;

pub use pipeline::Output;

/// Which capture path to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptureKind {
    /// TC classifiers on ingress and egress of each interface (TCX, or clsact before 6.6).
    Tc,
    /// An eBPF socket filter on one AF_PACKET socket: for where TC can't attach.
    Socket,
    /// A plain AF_PACKET socket read in userspace: for where no eBPF program may load.
    Afpacket,
}

/// Which packets become L3/L4 flow records (L7 flows and spans come regardless).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum L4Mode {
    /// One record per packet, like Hubble's per-packet trace events.
    #[default]
    EveryPacket,
    /// Only TCP SYN/FIN/RST packets: connection starts and ends, a fraction of the cost.
    ControlOnly,
    /// None.
    Off,
}

impl L4Mode {
    /// The engine's setting.
    pub fn engine(self) -> flows::engine::L4Records {
        match self {
            L4Mode::EveryPacket => flows::engine::L4Records::EveryPacket,
            L4Mode::ControlOnly => flows::engine::L4Records::ControlOnly,
            L4Mode::Off => flows::engine::L4Records::Off,
        }
    }
}

/// How TC programs attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TcAttach {
    /// TCX where the kernel has it (6.6+), clsact otherwise.
    Auto,
    /// TCX links only.
    Tcx,
    /// clsact qdisc filters (the pre-6.6 way), on any kernel.
    Clsact,
}

/// An IP prefix in CIDR notation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr(pub IpAddr, pub u8);

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (ip, len) = match s.split_once('/') {
            Some((ip, len)) => (ip, Some(len)),
            None => (s, None),
        };
        let ip: IpAddr = ip
            .parse()
            .map_err(|e| format!("{s:?} is not an IP prefix: {e}"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let len = match len {
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0..={max}"))?,
            None => max,
        };
        Ok(Cidr(ip, len))
    }
}

/// Options of `flowscope agent`. Each one overrides the same key of `--config`.
#[derive(Args, Debug, Clone, Default)]
pub struct AgentArgs {
    /// TOML file with any of the options below (keys in kebab-case, e.g. `tc-attach`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Interface to capture on (repeatable). Default: every interface that is up, and those
    /// that come up later.
    #[arg(long = "iface", short = 'i', value_name = "NAME")]
    pub ifaces: Vec<String>,
    /// Capture path. Default: tc, falling back to socket, then afpacket, saying why.
    #[arg(long, value_enum)]
    pub capture: Option<CaptureKind>,
    /// How TC programs attach [default: auto].
    #[arg(long, value_enum)]
    pub tc_attach: Option<TcAttach>,
    /// Payload bytes kept per packet after the TCP/UDP header [default: 512].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=8000))]
    pub snaplen: Option<u32>,
    /// Bytes of the kernel ring buffer, rounded up to a power of two [default: 4 MiB].
    #[arg(long)]
    pub ring_size: Option<u32>,
    /// Message bodies of at least this many bytes that no decoder reads (HTTP/1 bodies of a
    /// known length) are captured as their segments' headers only, by the TC or socket
    /// program, and so are TLS ciphertext and undecoded protocols after their first 64 KiB;
    /// 0 captures every segment up to --snaplen [default: 65536].
    #[arg(long, value_name = "BYTES")]
    pub body_skip_min_bytes: Option<u64>,
    /// Capture only packets with this port on either side (repeatable).
    #[arg(long = "port", value_name = "PORT")]
    pub ports: Vec<u16>,
    /// Never capture packets with this port on either side (repeatable).
    #[arg(long = "exclude-port", value_name = "PORT")]
    pub exclude_ports: Vec<u16>,
    /// Capture only packets from or to this prefix (repeatable), e.g. 10.0.0.0/8.
    #[arg(long = "cidr", value_name = "CIDR")]
    pub cidrs: Vec<Cidr>,
    /// Output format [default: compact].
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Output>,
    /// Where the Observer API listens [default: unix:///var/run/flowscope/observer.sock].
    #[arg(long, value_name = "unix:///PATH")]
    pub listen: Option<String>,
    /// Also serve the Observer API on TCP, e.g. 0.0.0.0:4244 for Hubble Relay: over TLS with
    /// --tls-cert-file and --tls-key-file, or plaintext with --disable-tls.
    #[arg(long, value_name = "ADDR")]
    pub listen_tcp: Option<String>,
    /// TLS on --listen-tcp: this server's certificate chain (PEM), re-read when it changes
    /// (Cilium's --hubble-tls-cert-file).
    #[arg(long, value_name = "FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// The certificate's private key (PEM) (Cilium's --hubble-tls-key-file).
    #[arg(long, value_name = "FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// mTLS: clients must present a certificate signed by one of these CAs (PEM; repeatable
    /// or comma-separated) (Cilium's --hubble-tls-client-ca-files).
    #[arg(long, value_name = "FILE", value_delimiter = ',')]
    pub tls_client_ca_files: Vec<PathBuf>,
    /// Serve --listen-tcp in plaintext (Cilium's --hubble-disable-tls).
    #[arg(long)]
    pub disable_tls: bool,
    /// TLS server name announced to Hubble Relay [default: NODE.default.hubble-grpc.cilium.io].
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,
    /// HOST:PORT resolving to every agent (a headless Service): announce them all to Hubble
    /// Relay through peer.Peer/Notify, not just this node.
    #[arg(long, value_name = "HOST:PORT")]
    pub peer_service: Option<String>,
    /// How sockets are tied to processes: auto, kprobe, cgroup+tp_btf, tp_btf, proc-only, off
    /// [default: auto].
    #[arg(long)]
    pub attribution: Option<String>,
    /// The host's procfs, for sockets older than the agent [default: /proc].
    #[arg(long, value_name = "DIR")]
    pub proc_root: Option<PathBuf>,
    /// Which packets become L3/L4 flow records [default: control-only].
    #[arg(long, value_enum)]
    pub l4_records: Option<L4Mode>,
    /// Flows kept for `flowscope observe --last` [default: 4095].
    #[arg(long)]
    pub max_flows: Option<usize>,
    /// Keep the terminal's own SSH session in the capture (by default it is excluded, or every
    /// printed line would make another packet to print).
    #[arg(long)]
    pub include_own_ssh: bool,
    /// Leave out the agent's own traffic (its /metrics and API listeners, its exports); by
    /// default it is shown, its process marked as this agent's.
    #[arg(long)]
    pub exclude_self: bool,
    /// Send spans to this OTLP collector: http://HOST:4317 is gRPC, http://HOST:4318 or a
    /// /v1/traces path is HTTP/protobuf, https:// uses TLS. Default: $OTEL_EXPORTER_OTLP_*.
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// OTLP transport [default: from the endpoint, or $OTEL_EXPORTER_OTLP_PROTOCOL].
    #[arg(long, value_enum)]
    pub otlp_protocol: Option<crate::export::OtlpProtocol>,
    /// Extra OTLP request header (repeatable), e.g. authorization=Bearer\ TOKEN.
    #[arg(long = "otlp-header", value_name = "KEY=VALUE")]
    pub otlp_headers: Vec<String>,
    /// OTLP body compression [default: none, or $OTEL_EXPORTER_OTLP_COMPRESSION].
    #[arg(long, value_enum)]
    pub otlp_compression: Option<crate::export::OtlpCompression>,
    /// service.name for a process by its comm (repeatable), e.g. nginx=frontend.
    #[arg(long = "service-name-map", value_name = "COMM=NAME")]
    pub service_name_map: Vec<String>,
    /// Print each span as a JSON line on stdout.
    #[arg(long)]
    pub print_spans: bool,
    /// Report kernel packet drops as DROPPED flows (`--drops false` turns it off)
    /// [default: true].
    #[arg(long, value_name = "BOOL")]
    pub drops: Option<bool>,
    /// Processes whose syscalls (files, fsync, connects, socket I/O) become child spans of the
    /// requests they serve, with a latency breakdown: pid:N, comm:NAME or NAME, comma-separated
    /// or repeated [default: none; needs span output: --otlp-endpoint or --print-spans].
    #[arg(long, value_delimiter = ',', value_name = "PROCESS,...")]
    pub syscall_spans: Vec<String>,
    /// Most syscall child spans per request; the rest become counts on the span [default: 32].
    #[arg(long, value_name = "N")]
    pub syscall_span_children: Option<usize>,
    /// Where /metrics and /healthz are served [default: 127.0.0.1:9965]; "" turns it off.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// The kubelet's pod log directory, whose `<namespace>_<pod>_<uid>` entries name the pods
    /// of local sockets [default: /var/log/pods].
    #[arg(long, value_name = "DIR")]
    pub pods_log_dir: Option<PathBuf>,
    /// Metric families served on /metrics, comma-separated: flowscope, otel (OpenTelemetry
    /// semantic-convention names), hubble (Hubble's names) [default: all three].
    #[arg(long, value_enum, value_delimiter = ',', value_name = "SET,...")]
    pub metrics: Vec<crate::export::MetricSet>,
    /// Engine worker threads: connections are spread over them by a hash of their 5-tuple
    /// and the records merged back in capture order; 0 = one per 8 CPUs, at most 8
    /// [default: 0].
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Read TLS plaintext at OpenSSL with uprobes to decode HTTPS, HTTP/2 and gRPC over TLS
    /// (`--tls-plaintext false` turns it off) [default: true].
    #[arg(long, value_name = "BOOL")]
    pub tls_plaintext: Option<bool>,
}

impl AgentArgs {
    /// The file's configuration (or the defaults) with every flag given laid over it.
    pub fn into_config(self) -> Result<AgentConfig> {
        let mut c = match &self.config {
            Some(p) => AgentConfig::from_file(p)?,
            None => AgentConfig::default(),
        };
        if !self.ifaces.is_empty() {
            c.interfaces = self.ifaces;
        }
        if self.capture.is_some() {
            c.capture = self.capture;
        }
        if let Some(v) = self.tc_attach {
            c.tc_attach = v;
        }
        if let Some(v) = self.snaplen {
            c.snaplen = v;
        }
        if let Some(v) = self.ring_size {
            c.ring_size = v;
        }
        if let Some(v) = self.body_skip_min_bytes {
            c.body_skip_min_bytes = v;
        }
        if !self.ports.is_empty() {
            c.ports = self.ports;
        }
        if !self.exclude_ports.is_empty() {
            c.exclude_ports = self.exclude_ports;
        }
        if !self.cidrs.is_empty() {
            c.cidrs = self
                .cidrs
                .iter()
                .map(|x| format!("{}/{}", x.0, x.1))
                .collect();
        }
        if let Some(v) = self.output {
            c.output = v;
        }
        c.include_own_ssh |= self.include_own_ssh;
        c.exclude_self |= self.exclude_self;
        if self.otlp_endpoint.is_some() {
            c.export.otlp_endpoint = self.otlp_endpoint;
        }
        if self.otlp_protocol.is_some() {
            c.export.otlp_protocol = self.otlp_protocol;
        }
        if self.otlp_compression.is_some() {
            c.export.otlp_compression = self.otlp_compression;
        }
        c.export.add_header_flags(&self.otlp_headers)?;
        c.export.add_service_map_flags(&self.service_name_map)?;
        c.export.print_spans |= self.print_spans;
        if let Some(v) = self.metrics_listen {
            c.export.metrics_listen = v;
        }
        if !self.metrics.is_empty() {
            c.export.metrics = self.metrics;
        }
        if let Some(v) = self.listen {
            c.listen = v;
        }
        if self.peer_service.is_some() {
            c.peer_service = self.peer_service;
        }
        if self.listen_tcp.is_some() {
            c.listen_tcp = self.listen_tcp;
        }
        if self.tls_cert_file.is_some() {
            c.tls_cert_file = self.tls_cert_file;
        }
        if self.tls_key_file.is_some() {
            c.tls_key_file = self.tls_key_file;
        }
        if !self.tls_client_ca_files.is_empty() {
            c.tls_client_ca_files = self.tls_client_ca_files;
        }
        c.disable_tls |= self.disable_tls;
        if self.tls_server_name.is_some() {
            c.tls_server_name = self.tls_server_name;
        }
        if let Some(v) = self.attribution {
            c.attribution = v;
        }
        if let Some(v) = self.l4_records {
            c.l4_records = v;
        }
        if let Some(v) = self.proc_root {
            c.proc_root = v;
        }
        if let Some(v) = self.drops {
            c.drops = v;
        }
        if !self.syscall_spans.is_empty() {
            c.syscall_spans = self.syscall_spans;
        }
        if let Some(v) = self.syscall_span_children {
            c.syscall_span_children = v;
        }
        if let Some(v) = self.tls_plaintext {
            c.tls_plaintext = v;
        }
        if let Some(v) = self.max_flows {
            c.max_flows = v;
        }
        if let Some(v) = self.pods_log_dir {
            c.pods_log_dir = v;
        }
        if let Some(v) = self.workers {
            c.workers = v;
        }
        c.validate()?;
        Ok(c)
    }
}

/// The in-kernel filters a configuration asks for.
fn kernel_filters(c: &AgentConfig) -> ebpf_tc::Filters {
    let mut deny = c.exclude_ports.clone();
    if !c.include_own_ssh {
        if let Some(port) = own_ssh_client_port() {
            tracing::info!(
                port,
                "excluding this terminal's SSH connection (client port {port}); --include-own-ssh keeps it"
            );
            deny.push(port);
        }
    }
    ebpf_tc::Filters {
        allow_ports: c.ports.clone(),
        deny_ports: deny,
        allow_cidrs: c.parsed_cidrs().iter().map(|x| (x.0, x.1)).collect(),
    }
}

/// `SSH_CONNECTION="client_ip client_port server_ip server_port"` of the session we run in.
fn own_ssh_client_port() -> Option<u16> {
    let v = std::env::var("SSH_CONNECTION").ok()?;
    v.split_whitespace().nth(1)?.parse().ok()
}

/// Runs the agent until Ctrl-C or SIGTERM.
pub fn run(args: AgentArgs) -> Result<()> {
    let print_only = args.print_config;
    let cfg = args.into_config()?;
    if print_only {
        print!("{}", cfg.to_toml());
        return Ok(());
    }
    for name in &cfg.interfaces {
        ebpf_tc::iface::by_name(name).with_context(|| format!("interface {name}"))?;
    }
    preflight::check_privileges(cfg.capture != Some(CaptureKind::Afpacket))?;
    preflight::report_kernel();
    // One malloc arena per engine worker (main.rs: one for everything else otherwise).
    if cfg.engine_workers() > 1 {
        crate::limit_malloc_arenas(cfg.engine_workers());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(source::run(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cidrs() {
        assert_eq!(
            "198.18.0.0/15".parse::<Cidr>().unwrap(),
            Cidr("198.18.0.0".parse().unwrap(), 15)
        );
        assert_eq!(
            "2001:db8::1".parse::<Cidr>().unwrap(),
            Cidr("2001:db8::1".parse().unwrap(), 128)
        );
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nonsense/8".parse::<Cidr>().is_err());
    }
}
