//! `flowscope agent`: capture on this node, decode, print (later: serve and export).

mod clock;
mod pipeline;
mod preflight;
mod source;

use std::{net::IpAddr, str::FromStr};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};

pub use pipeline::Output;

/// Which capture path to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CaptureKind {
    /// TC classifiers on ingress and egress of each interface (TCX, or clsact before 6.6).
    Tc,
    /// An eBPF socket filter on one AF_PACKET socket: for where TC can't attach.
    Socket,
    /// A plain AF_PACKET socket read in userspace: for where no eBPF program may load.
    Afpacket,
}

/// How TC programs attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
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

/// Options of `flowscope agent`.
#[derive(Args, Debug, Clone)]
pub struct AgentArgs {
    /// Interface to capture on (repeatable). Default: every interface that is up, and those
    /// that come up later.
    #[arg(long = "iface", short = 'i', value_name = "NAME")]
    pub ifaces: Vec<String>,
    /// Capture path. Default: tc, falling back to socket, then afpacket, saying why.
    #[arg(long, value_enum)]
    pub capture: Option<CaptureKind>,
    /// How TC programs attach.
    #[arg(long, value_enum, default_value = "auto")]
    pub tc_attach: TcAttach,
    /// Payload bytes kept per packet after the TCP/UDP header.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=8000))]
    pub snaplen: u32,
    /// Bytes of the kernel ring buffer (rounded up to a power of two).
    #[arg(long, default_value_t = 16 << 20)]
    pub ring_size: u32,
    /// Capture only packets with this port on either side (repeatable).
    #[arg(long = "port", value_name = "PORT")]
    pub ports: Vec<u16>,
    /// Never capture packets with this port on either side (repeatable).
    #[arg(long = "exclude-port", value_name = "PORT")]
    pub exclude_ports: Vec<u16>,
    /// Capture only packets from or to this prefix (repeatable), e.g. 10.0.0.0/8.
    #[arg(long = "cidr", value_name = "CIDR")]
    pub cidrs: Vec<Cidr>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "compact")]
    pub output: Output,
    /// Keep the terminal's own SSH session in the capture (by default it is excluded, or every
    /// printed line would make another packet to print).
    #[arg(long)]
    pub include_own_ssh: bool,
}

impl AgentArgs {
    fn filters(&self) -> ebpf_tc::Filters {
        let mut deny = self.exclude_ports.clone();
        if !self.include_own_ssh {
            if let Some(port) = own_ssh_client_port() {
                tracing::info!(port, "excluding this terminal's SSH connection (client port {port}); --include-own-ssh keeps it");
                deny.push(port);
            }
        }
        ebpf_tc::Filters {
            allow_ports: self.ports.clone(),
            deny_ports: deny,
            allow_cidrs: self.cidrs.iter().map(|c| (c.0, c.1)).collect(),
        }
    }
}

/// `SSH_CONNECTION="client_ip client_port server_ip server_port"` of the session we run in.
fn own_ssh_client_port() -> Option<u16> {
    let v = std::env::var("SSH_CONNECTION").ok()?;
    v.split_whitespace().nth(1)?.parse().ok()
}

/// Runs the agent until Ctrl-C or SIGTERM.
pub fn run(args: AgentArgs) -> Result<()> {
    if args.ifaces.iter().any(|i| i.is_empty()) {
        bail!("--iface needs an interface name");
    }
    for name in &args.ifaces {
        ebpf_tc::iface::by_name(name).with_context(|| format!("--iface {name}"))?;
    }
    preflight::check_privileges(args.capture != Some(CaptureKind::Afpacket))?;
    preflight::report_kernel();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(source::run(args))
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
