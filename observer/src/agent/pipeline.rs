//! From a captured frame to a printed line: decode with `flows::packet`, label with the
//! interface, print. The flows engine plugs in here.

use std::{
    collections::{BTreeMap, HashMap},
    io::Write,
};

use ebpf_tc::wire::{CaptureSource, L2Kind, PacketHdr, WireDirection};
use flows::packet::{self, CaptureMeta, Direction, LinkType, Transport};
use serde::Serialize;

use super::clock::MonoToWall;
use crate::timefmt;

/// How the agent prints.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Output {
    /// One line per event, like `hubble observe`.
    Compact,
    /// One JSON object per line.
    Json,
}

/// One L3/L4 packet event, as printed with `-o json`.
#[derive(Serialize, Debug)]
pub struct PacketEvent<'a> {
    /// RFC 3339 capture time.
    pub time: String,
    /// Interface name (or index when it has gone).
    pub iface: &'a str,
    /// Interface index.
    pub ifindex: u32,
    /// ingress or egress.
    pub direction: Direction,
    /// Capture path: tc, socket or afpacket.
    pub source: &'static str,
    /// Source address.
    pub src: String,
    /// Destination address.
    pub dst: String,
    /// Source port (TCP/UDP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    /// Destination port (TCP/UDP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<u16>,
    /// TCP, UDP, ICMPv4, ICMPv6 or IP.
    pub protocol: &'static str,
    /// TCP flags as Hubble names them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tcp_flags: Vec<&'static str>,
    /// Transport payload bytes on the wire.
    pub payload_len: u32,
    /// Bytes of the whole packet.
    pub orig_len: u32,
    /// Kernel socket cookie (egress on TC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_cookie: Option<u64>,
}

/// Receives every captured frame of one capture path, in order.
pub struct Pipeline<W: Write> {
    out: W,
    format: Output,
    clock: Option<MonoToWall>,
    names: HashMap<u32, String>,
    /// Frames that did not decode, by reason.
    pub decode_errors: BTreeMap<&'static str, u64>,
    /// Frames printed.
    pub printed: u64,
}

impl<W: Write> Pipeline<W> {
    /// `clock` converts kernel monotonic stamps; None when stamps are already wall-clock.
    pub fn new(out: W, format: Output, clock: Option<MonoToWall>) -> Self {
        Self {
            out,
            format,
            clock,
            names: HashMap::new(),
            decode_errors: BTreeMap::new(),
            printed: 0,
        }
    }

    fn iface_name(&mut self, ifindex: u32) -> &str {
        self.names.entry(ifindex).or_insert_with(|| {
            ebpf_tc::iface::name_of(ifindex).unwrap_or_else(|| format!("if{ifindex}"))
        })
    }

    /// Handles one captured frame.
    pub fn on_frame(&mut self, hdr: &PacketHdr, data: &[u8]) -> std::io::Result<()> {
        let ts_ns = match self.clock {
            Some(c) => c.wall_ns(hdr.ts_ns),
            None => hdr.ts_ns,
        };
        let meta = CaptureMeta {
            ts_ns,
            ifindex: hdr.ifindex,
            direction: match hdr.direction {
                WireDirection::Ingress => Direction::Ingress,
                WireDirection::Egress => Direction::Egress,
            },
            orig_len: hdr.orig_len,
            socket_cookie: hdr.cookie(),
        };
        let link = match hdr.l2 {
            L2Kind::Ethernet => LinkType::Ethernet,
            L2Kind::RawIp => LinkType::RawIp,
        };
        let pkt = match packet::decode(link, data, meta) {
            Ok(p) => p,
            Err(e) => {
                *self.decode_errors.entry(e.reason()).or_default() += 1;
                return Ok(());
            }
        };
        let source = match hdr.source {
            CaptureSource::Tc => "tc",
            CaptureSource::Socket => "socket",
            CaptureSource::AfPacket => "afpacket",
        };
        let tcp_flags: Vec<&'static str> = match pkt.transport {
            Transport::Tcp(t) => t.flags.names().collect(),
            _ => Vec::new(),
        };
        let (sp, dp) = pkt.ports().unzip();
        let format = self.format;
        let iface = self.iface_name(hdr.ifindex).to_string();
        let ev = PacketEvent {
            time: timefmt::rfc3339_nanos(ts_ns),
            iface: &iface,
            ifindex: hdr.ifindex,
            direction: meta.direction,
            source,
            src: pkt.src.to_string(),
            dst: pkt.dst.to_string(),
            src_port: sp,
            dst_port: dp,
            protocol: pkt.protocol_name(),
            tcp_flags,
            payload_len: pkt.payload_wire_len,
            orig_len: hdr.orig_len,
            socket_cookie: hdr.cookie(),
        };
        match format {
            Output::Json => {
                serde_json::to_writer(&mut self.out, &ev)?;
                self.out.write_all(b"\n")?;
            }
            Output::Compact => {
                let ep = |a: &str, p: Option<u16>| match p {
                    Some(p) if a.contains(':') => format!("[{a}]:{p}"),
                    Some(p) => format!("{a}:{p}"),
                    None => a.to_string(),
                };
                let flags = if ev.tcp_flags.is_empty() {
                    String::new()
                } else {
                    format!(" Flags: {}", ev.tcp_flags.join(", "))
                };
                writeln!(
                    self.out,
                    "{}: {} -> {} {} {} {}{} len={}",
                    timefmt::stamp_milli(ts_ns),
                    ep(&ev.src, sp),
                    ep(&ev.dst, dp),
                    ev.iface,
                    ev.direction,
                    ev.protocol,
                    flags,
                    ev.payload_len
                )?;
            }
        }
        self.printed += 1;
        Ok(())
    }

    /// Flushes buffered output (after each batch).
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
