//! Prints GetFlowsResponses the way `hubble observe` does: compact, dict, table, json (the
//! bare flow) and jsonpb (the whole response), one event at a time.

use std::io::{self, Write};

use crate::api::{
    convert::{packet_direction, timestamp_ns, EVENT_TYPE_DROP, EVENT_TYPE_L7, EVENT_TYPE_TRACE},
    filter::event_type::TRACE_SUB_TYPES,
    proto::{
        flow::{
            layer4::Protocol, layer7::Record, Endpoint, Flow, L7FlowType, LostEvent,
            LostEventSource, Verdict,
        },
        flowscope::FlowExtension,
        observer::{get_flows_response::ResponseTypes, GetFlowsResponse},
    },
};
use flows::packet::Direction;

use super::{
    json,
    time::{format_time, TimeFormat},
};

/// Output format (`-o`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Format {
    /// One line per flow, like `hubble observe`.
    #[default]
    Compact,
    /// A block of `KEY: value` lines per flow.
    Dict,
    /// The flow as protobuf JSON, one per line.
    Json,
    /// The whole GetFlowsResponse as protobuf JSON, one per line (readable by --input-file).
    Jsonpb,
    /// Aligned columns with a header.
    Table,
}

/// When to use colours (`--color`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum ColorMode {
    /// When stdout is a terminal and NO_COLOR is unset.
    #[default]
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl ColorMode {
    /// Resolves `auto` against stdout.
    pub fn enabled(self) -> bool {
        use std::io::IsTerminal;
        match self {
            Self::Always => true,
            Self::Never => false,
            Self::Auto => std::env::var_os("NO_COLOR").is_none() && io::stdout().is_terminal(),
        }
    }
}

/// How a [`Printer`] prints.
#[derive(Debug, Clone, Copy, Default)]
pub struct PrinterOptions {
    /// Output format.
    pub format: Format,
    /// Use ANSI colours.
    pub color: bool,
    /// Timestamp layout.
    pub time_format: TimeFormat,
    /// Print times in UTC instead of local time.
    pub utc: bool,
    /// Show the node name (compact: ` [node]`, dict/table: a NODE field).
    pub node_name: bool,
    /// Table: print each row as it comes (when following) instead of aligning at the end.
    pub streaming: bool,
}

const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const CYAN: &str = "\x1b[36m";
const RESET: &str = "\x1b[0m";

/// Prints responses to a writer; call [`Printer::finish`] at the end (tables are aligned
/// then).
pub struct Printer<W: Write> {
    opts: PrinterOptions,
    out: W,
    printed: usize,
    rows: Vec<Vec<String>>,
}

impl<W: Write> std::fmt::Debug for Printer<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Printer").field("opts", &self.opts).finish()
    }
}

/// The pieces of a flow every human format shows.
struct Fields {
    time: String,
    node: String,
    source: String,
    destination: String,
    arrow: &'static str,
    r#type: String,
    verdict: String,
    summary: String,
}

fn endpoint(ip: &str, port: Option<u32>) -> String {
    match port {
        Some(p) if ip.contains(':') => format!("[{ip}]:{p}"),
        Some(p) => format!("{ip}:{p}"),
        None => ip.to_string(),
    }
}

/// What an end is called, as the `hubble` CLI's `Hostname` picks it: `namespace/pod` for a
/// pod, else its DNS names joined by `,`, else the address.
fn host_name(ip: &str, ep: Option<&Endpoint>, names: &[String]) -> String {
    match ep {
        Some(e) if !e.pod_name.is_empty() => {
            if e.namespace.is_empty() {
                e.pod_name.clone()
            } else {
                format!("{}/{}", e.namespace, e.pod_name)
            }
        }
        _ if !names.is_empty() => names.join(","),
        _ => ip.to_string(),
    }
}

/// An end's identity as the `hubble` CLI prints it: a reserved identity by name (Cilium's
/// pkg/identity/numericidentity.go), any other as `ID:N`.
fn identity_note(id: u32) -> String {
    match crate::api::identity::RESERVED_NAMES.get(id as usize) {
        Some(name) => format!("({name})"),
        None => format!("(ID:{id})"),
    }
}

/// The flow's summary as the `hubble` CLI prints it: `Flow.summary` as the server filled it
/// (flowscope and Cilium both do), else made here in Cilium's wording (a flow read from a file
/// written without one).
pub fn summary(f: &Flow) -> String {
    if f.summary.is_empty() {
        crate::api::summary::summary(f)
    } else {
        f.summary.clone()
    }
}

/// Hubble's event type word: `http-request`, `dns-response`, `to-endpoint`, `drop`, ...
pub fn flow_type(f: &Flow) -> String {
    let et = f.event_type.as_ref().map(|e| (e.r#type, e.sub_type));
    if let Some(l7) = &f.l7 {
        let dir = if l7.r#type == L7FlowType::Response as i32 {
            "response"
        } else {
            "request"
        };
        return match l7.record {
            Some(Record::Http(_)) => format!("http-{dir}"),
            // Like hubble's GetFlowType: the DNS observation source follows (`dns-request
            // wire`, `dns-response proxy` from Cilium); none adds nothing.
            Some(Record::Dns(ref d)) if !d.observation_source.is_empty() => {
                format!("dns-{dir} {}", d.observation_source)
            }
            Some(Record::Dns(_)) => format!("dns-{dir}"),
            None => "l7".into(),
        };
    }
    match et {
        // The kernel's own TCP events (tcp_retransmit_skb, tcp_send_reset/receive_reset).
        Some((EVENT_TYPE_TRACE, sub)) => match kernel_tcp_event(f) {
            Some(k) => format!(
                "tcp-{} {}",
                k.kind.to_lowercase().replace('_', "-"),
                k.state
            ),
            None => TRACE_SUB_TYPES
                .iter()
                .find(|(_, v)| *v == sub)
                .map(|(n, _)| n.to_string())
                .unwrap_or_else(|| "trace".into()),
        },
        Some((EVENT_TYPE_DROP, _)) => drop_type(f),
        Some((EVENT_TYPE_L7, _)) => "l7".into(),
        _ => "unknown".into(),
    }
}

fn kernel_tcp_event(f: &Flow) -> Option<crate::api::proto::flowscope::KernelTcpEvent> {
    crate::api::proto::flowscope::FlowExtension::from_flow(f).and_then(|e| e.kernel_tcp_event)
}

/// A drop's reason where the type column goes, as Hubble prints its drop reason there: the
/// kernel's own name (flowscope extension), else Hubble's DropReason, else "drop".
fn drop_type(f: &Flow) -> String {
    use crate::api::proto::flow::DropReason;
    if let Some(k) =
        crate::api::proto::flowscope::FlowExtension::from_flow(f).and_then(|e| e.kernel_drop)
    {
        return format!("drop {}", k.reason_name);
    }
    match DropReason::try_from(f.drop_reason_desc) {
        Ok(DropReason::Unknown) | Err(_) => "drop".into(),
        Ok(r) => format!("drop {}", r.as_str_name()),
    }
}

fn pid_note(p: &crate::api::proto::flowscope::Process) -> String {
    let mut note = format!("(pid {}", p.pid);
    if !p.comm.is_empty() {
        note.push(' ');
        note.push_str(&p.comm);
    }
    if !p.thread_name.is_empty() {
        note.push_str(", thread ");
        note.push_str(&p.thread_name);
    }
    if p.agent {
        note.push_str(", this agent");
    }
    note.push(')');
    note
}

/// `(pid N comm)` notes for the source and destination ends, where their owners are known:
/// the local socket sends egress packets and receives ingress ones; the peer is the other end.
fn process_notes(f: &Flow) -> (Option<String>, Option<String>) {
    let Some(ext) = FlowExtension::from_flow(f) else {
        return (None, None);
    };
    let local = ext.process.as_ref().map(pid_note);
    let peer = ext.peer_process.as_ref().map(pid_note);
    if packet_direction(f) != Direction::Ingress {
        (local, peer)
    } else {
        (peer, local)
    }
}

/// A SYN without ACK.
fn is_syn(f: &Flow) -> bool {
    match f.l4.as_ref().and_then(|l| l.protocol.as_ref()) {
        Some(Protocol::Tcp(t)) => t.flags.as_ref().is_some_and(|x| x.syn && !x.ack),
        _ => false,
    }
}

/// The connection's TCP health in a few words (`rtt 12.3ms, 2 retransmits, reset by server`),
/// appended to the summary of flows that carry it (issue 17).
fn health_note(f: &Flow) -> Option<String> {
    let ext = FlowExtension::from_flow(f)?;
    // Go-style like Hubble's latencies: 52µs, 1.3ms, 2.1s.
    let ms = |ns: u64| match ns {
        0..1_000_000 => format!("{}µs", ns / 1_000),
        1_000_000..1_000_000_000 => format!("{:.1}ms", ns as f64 / 1e6),
        _ => format!("{:.1}s", ns as f64 / 1e9),
    };
    let Some(h) = ext.tcp_health else {
        // L7 flows carry the RTT only.
        return (ext.tcp_srtt_ns != 0).then(|| format!("tcp: rtt {}", ms(ext.tcp_srtt_ns)));
    };
    let h = crate::api::tcp_health::from_proto(&h);
    let mut parts = Vec::new();
    if let Some(ns) = h.handshake_ns {
        parts.push(format!("handshake {}", ms(ns)));
    }
    if let Some(ns) = h.path_srtt_ns() {
        parts.push(format!("rtt {}", ms(ns)));
    }
    let r = h.retransmitted_segments();
    if r > 0 {
        parts.push(format!("{r} retransmits"));
    }
    if h.syn_retransmits > 0 {
        parts.push(format!("{} SYN retransmits", h.syn_retransmits));
    }
    let zw = h.to_server.zero_window_advertisements + h.to_client.zero_window_advertisements;
    if zw > 0 {
        parts.push(format!("{zw} zero windows"));
    }
    let full = h.to_server.window_full_segments + h.to_client.window_full_segments;
    if full > 0 {
        parts.push(format!("{full} window full"));
    }
    if h.refused {
        parts.push("refused".into());
    } else if h.syn_unanswered && !is_syn(f) {
        // On the SYN's own record nothing could have answered yet.
        parts.push("SYN unanswered".into());
    } else if let Some(c) = h.closed_by.filter(|c| c.reset) {
        let by = match c.by {
            flows::record::ConnectionRole::Client => "client",
            flows::record::ConnectionRole::Server => "server",
        };
        parts.push(format!("reset by {by}"));
    }
    (!parts.is_empty()).then(|| format!("tcp: {}", parts.join(", ")))
}

impl<W: Write> Printer<W> {
    /// A printer writing to `out`.
    pub fn new(opts: PrinterOptions, out: W) -> Self {
        Self {
            opts,
            out,
            printed: 0,
            rows: Vec::new(),
        }
    }

    fn paint(&self, color: &str, s: &str) -> String {
        if self.opts.color {
            format!("{color}{s}{RESET}")
        } else {
            s.to_string()
        }
    }

    fn fields(&self, f: &Flow) -> Fields {
        let ip = f.ip.clone().unwrap_or_default();
        let ports = match f.l4.as_ref().and_then(|l| l.protocol.as_ref()) {
            Some(Protocol::Tcp(t)) => Some((t.source_port, t.destination_port)),
            Some(Protocol::Udp(u)) => Some((u.source_port, u.destination_port)),
            Some(Protocol::Sctp(s)) => Some((s.source_port, s.destination_port)),
            _ => None,
        };
        let src_host = host_name(&ip.source, f.source.as_ref(), &f.source_names);
        let dst_host = host_name(
            &ip.destination,
            f.destination.as_ref(),
            &f.destination_names,
        );
        let mut source = self.paint(CYAN, &endpoint(&src_host, ports.map(|p| p.0)));
        let mut destination = self.paint(CYAN, &endpoint(&dst_host, ports.map(|p| p.1)));
        for (side, ep) in [(&mut source, &f.source), (&mut destination, &f.destination)] {
            if let Some(ep) = ep {
                side.push(' ');
                side.push_str(&identity_note(ep.identity));
            }
        }
        let (src_note, dst_note) = process_notes(f);
        for (side, note) in [(&mut source, src_note), (&mut destination, dst_note)] {
            if let Some(note) = note {
                side.push(' ');
                side.push_str(&note);
            }
        }
        let mut arrow = "->";
        match f.is_reply {
            None => arrow = "<>",
            Some(true) => {
                // Hubble shows replies from the client's point of view.
                std::mem::swap(&mut source, &mut destination);
                arrow = "<-";
            }
            Some(false) => {}
        }
        let verdict_name = Verdict::try_from(f.verdict)
            .map(|v| v.as_str_name().to_string())
            .unwrap_or_else(|_| f.verdict.to_string());
        let verdict = match Verdict::try_from(f.verdict) {
            Ok(Verdict::Forwarded) => self.paint(GREEN, &verdict_name),
            Ok(Verdict::Dropped | Verdict::Error) => self.paint(RED, &verdict_name),
            _ => self.paint(YELLOW, &verdict_name),
        };
        Fields {
            time: format_time(
                f.time.as_ref().map(timestamp_ns).unwrap_or(0),
                self.opts.time_format,
                self.opts.utc,
            ),
            node: f.node_name.clone(),
            source,
            destination,
            arrow,
            r#type: flow_type(f),
            verdict,
            summary: match health_note(f) {
                Some(note) => format!("{} [{note}]", summary(f)),
                None => summary(f),
            },
        }
    }

    /// Prints one response (a flow or a lost-events notice).
    pub fn print_response(&mut self, r: &GetFlowsResponse) -> io::Result<()> {
        match &r.response_types {
            Some(ResponseTypes::Flow(f)) => match self.opts.format {
                Format::Jsonpb => writeln!(self.out, "{}", json::response_to_json(r)),
                _ => self.print_flow(f),
            },
            Some(ResponseTypes::LostEvents(l)) => match self.opts.format {
                Format::Json | Format::Jsonpb => {
                    writeln!(self.out, "{}", json::response_to_json(r))
                }
                _ => self.print_lost(l),
            },
            None => Ok(()),
        }
    }

    fn print_lost(&mut self, l: &LostEvent) -> io::Result<()> {
        let source = LostEventSource::try_from(l.source)
            .map(|s| s.as_str_name())
            .unwrap_or("UNKNOWN_LOST_EVENT_SOURCE");
        let cpu = l
            .cpu
            .map(|c| format!("CPU({c})"))
            .unwrap_or_else(|| "CPU(unknown)".into());
        let line = format!("EVENTS LOST: {source} {cpu} {}", l.num_events_lost);
        let line = self.paint(RED, &line);
        writeln!(self.out, "{line}")
    }

    /// Prints one flow.
    pub fn print_flow(&mut self, f: &Flow) -> io::Result<()> {
        match self.opts.format {
            Format::Json => writeln!(self.out, "{}", json::flow_to_json(f)),
            Format::Jsonpb => {
                let r = GetFlowsResponse {
                    node_name: f.node_name.clone(),
                    time: f.time,
                    response_types: Some(ResponseTypes::Flow(f.clone())),
                };
                writeln!(self.out, "{}", json::response_to_json(&r))
            }
            Format::Compact => {
                let x = self.fields(f);
                let node = if self.opts.node_name {
                    format!(" [{}]", x.node)
                } else {
                    String::new()
                };
                writeln!(
                    self.out,
                    "{}{node}: {} {} {} {} {} ({})",
                    x.time, x.source, x.arrow, x.destination, x.r#type, x.verdict, x.summary
                )
            }
            Format::Dict => {
                let x = self.fields(f);
                if self.printed > 0 {
                    writeln!(self.out, "------------")?;
                }
                writeln!(self.out, "  TIMESTAMP: {}", x.time)?;
                if self.opts.node_name {
                    writeln!(self.out, "       NODE: {}", x.node)?;
                }
                writeln!(self.out, "     SOURCE: {}", x.source)?;
                writeln!(self.out, "DESTINATION: {}", x.destination)?;
                writeln!(self.out, "       TYPE: {}", x.r#type)?;
                writeln!(self.out, "    VERDICT: {}", x.verdict)?;
                writeln!(self.out, "    SUMMARY: {}", x.summary)?;
                self.printed += 1;
                Ok(())
            }
            Format::Table => {
                let x = self.fields(f);
                let mut row = vec![x.time];
                if self.opts.node_name {
                    row.push(x.node);
                }
                row.extend([x.source, x.destination, x.r#type, x.verdict, x.summary]);
                if self.opts.streaming {
                    if self.printed == 0 {
                        let h = self.header();
                        self.write_row(&h, &[])?;
                    }
                    self.write_row(&row, &[])?;
                    self.printed += 1;
                } else {
                    self.rows.push(row);
                }
                Ok(())
            }
        }
    }

    fn header(&self) -> Vec<String> {
        let mut h = vec!["TIMESTAMP".to_string()];
        if self.opts.node_name {
            h.push("NODE".into());
        }
        h.extend(["SOURCE", "DESTINATION", "TYPE", "VERDICT", "SUMMARY"].map(String::from));
        h
    }

    /// Writes cells separated by 3 spaces, padded to `widths` (the last cell is not padded).
    fn write_row(&mut self, row: &[String], widths: &[usize]) -> io::Result<()> {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < row.len() {
                let w = widths.get(i).copied().unwrap_or(0);
                let visible = visible_len(cell);
                line.push_str(cell);
                line.push_str(&" ".repeat(w.saturating_sub(visible) + 3));
            } else {
                line.push_str(cell);
            }
        }
        writeln!(self.out, "{line}")
    }

    /// Flushes buffered output (aligns and prints a table).
    pub fn finish(&mut self) -> io::Result<()> {
        if !self.rows.is_empty() {
            let mut rows = std::mem::take(&mut self.rows);
            rows.insert(0, self.header());
            let cols = rows[0].len();
            let widths: Vec<usize> = (0..cols)
                .map(|c| rows.iter().map(|r| visible_len(&r[c])).max().unwrap_or(0))
                .collect();
            for r in &rows {
                self.write_row(r, &widths)?;
            }
            self.printed += rows.len() - 1;
        }
        self.out.flush()
    }

    /// The writer, for flushing between followed events.
    pub fn writer(&mut self) -> &mut W {
        &mut self.out
    }
}

/// Length without ANSI colour sequences.
fn visible_len(s: &str) -> usize {
    let mut n = 0;
    let mut in_esc = false;
    for c in s.chars() {
        match (in_esc, c) {
            (false, '\x1b') => in_esc = true,
            (true, 'm') => in_esc = false,
            (true, _) => {}
            (false, _) => n += 1,
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::convert::{flow_to_proto, tests as conv};

    fn render(format: Format, flows: &[Flow], color: bool) -> String {
        let mut p = Printer::new(
            PrinterOptions {
                format,
                color,
                utc: true,
                ..Default::default()
            },
            Vec::new(),
        );
        for f in flows {
            p.print_flow(f).unwrap();
        }
        p.finish().unwrap();
        String::from_utf8(p.out).unwrap()
    }

    fn request() -> Flow {
        let mut f = flow_to_proto(&conv::http_request(), "node-a");
        f.uuid = "u-1".into();
        f
    }

    fn response() -> Flow {
        let mut r = conv::http_request();
        std::mem::swap(&mut r.ip.source, &mut r.ip.destination);
        r.l4 = flows::record::Layer4::Tcp {
            source_port: 80,
            destination_port: 51234,
            flags: Default::default(),
        };
        r.traffic_direction = Direction::Egress;
        r.is_reply = Some(true);
        r.time_ns += 2_000_000;
        let l7 = r.l7.as_mut().unwrap();
        l7.r#type = flows::record::L7Type::Response;
        l7.latency_ns = Some(2_000_000);
        if let flows::record::L7Record::Http(h) = &mut l7.record {
            h.code = Some(200);
        }
        flow_to_proto(&r, "node-a")
    }

    fn syn() -> Flow {
        flow_to_proto(&conv::tcp_syn(), "node-b")
    }

    #[test]
    fn both_ends_are_named_with_thread_and_agent_marks() {
        let mut f = conv::http_request();
        f.process.as_mut().unwrap().thread_name = Some("worker-1".into());
        f.peer_process = Some(flows::record::ProcessInfo {
            pid: 9,
            comm: Some("flowscope".into()),
            agent: true,
            ..Default::default()
        });
        let got = render(Format::Compact, &[flow_to_proto(&f, "node-a")], false);
        assert!(
            got.contains("198.18.0.2:51234 (pid 9 flowscope, this agent) -> 198.18.0.1:80 (pid 456 nginx, thread worker-1)"),
            "{got}"
        );
    }

    #[test]
    fn tcp_health_note_in_text_formats() {
        use flows::record::{ConnectionRole, TcpClose, TcpDirectionHealth, TcpHealth};
        let mut f = conv::tcp_syn();
        f.l4 = flows::record::Layer4::Tcp {
            source_port: 40000,
            destination_port: 443,
            flags: flows::packet::TcpFlags::RST,
        };
        let health = TcpHealth {
            handshake_ns: Some(300_000),
            to_server: TcpDirectionHealth {
                srtt_ns: Some(20_000_000),
                rtt_samples: 2,
                retransmitted_segments: 2,
                window_full_segments: 3,
                ..Default::default()
            },
            closed_by: Some(TcpClose {
                by: ConnectionRole::Server,
                reset: true,
                time_ns: 1,
            }),
            ..Default::default()
        };
        f.tcp_srtt_ns = health.path_srtt_ns();
        f.tcp_health = Some(Box::new(health));
        let note =
            "[tcp: handshake 300µs, rtt 20.0ms, 2 retransmits, 3 window full, reset by server]";
        for format in [Format::Compact, Format::Dict, Format::Table] {
            let out = render(format, &[flow_to_proto(&f, "n")], false);
            assert!(out.contains(note), "{format:?}: {out}");
        }
        // An L7 flow carries the RTT only.
        let mut r = conv::http_request();
        r.tcp_srtt_ns = Some(52_000);
        let out = render(Format::Compact, &[flow_to_proto(&r, "n")], false);
        assert!(out.contains("[tcp: rtt 52µs]"), "{out}");
    }

    #[test]
    fn compact_golden() {
        let got = render(Format::Compact, &[request(), response(), syn()], false);
        assert_eq!(
            got,
            "Nov 25 13:20:01.123: 198.18.0.2:51234 -> 198.18.0.1:80 (pid 456 nginx) http-request FORWARDED (HTTP/1.1 GET http://198.18.0.1/page)\n\
             Nov 25 13:20:01.125: 198.18.0.2:51234 <- 198.18.0.1:80 (pid 456 nginx) http-response FORWARDED (HTTP/1.1 200 2ms (GET http://198.18.0.1/page))\n\
             Nov 25 13:20:01.000: [2001:db8::2]:40000 -> [2001:db8::1]:443 from-endpoint FORWARDED (TCP Flags: SYN)\n"
        );
    }

    /// Ends the agent resolved print as the `hubble` CLI prints them: the pod or the DNS
    /// names instead of the address, and the identity after it.
    #[test]
    fn compact_with_pods_names_and_identities() {
        let mut f = syn();
        f.source = Some(Endpoint {
            identity: 3,
            namespace: "shop".into(),
            pod_name: "cart-5d78c9869d-x7k2q".into(),
            ..Default::default()
        });
        f.destination = Some(Endpoint {
            identity: 2,
            ..Default::default()
        });
        f.destination_names = vec!["api.example.org".into(), "edge.example.net".into()];
        let got = render(Format::Compact, &[f.clone()], false);
        assert_eq!(
            got,
            "Nov 25 13:20:01.000: shop/cart-5d78c9869d-x7k2q:40000 (unmanaged) -> api.example.org,edge.example.net:443 (world) from-endpoint FORWARDED (TCP Flags: SYN)\n"
        );
        f.source.as_mut().unwrap().pod_name.clear();
        f.source.as_mut().unwrap().identity = 1;
        f.destination.as_mut().unwrap().identity = 12345;
        f.destination_names.clear();
        let got = render(Format::Compact, &[f], false);
        assert_eq!(
            got,
            "Nov 25 13:20:01.000: [2001:db8::2]:40000 (host) -> [2001:db8::1]:443 (ID:12345) from-endpoint FORWARDED (TCP Flags: SYN)\n"
        );
    }

    #[test]
    fn compact_with_color_and_node() {
        let mut p = Printer::new(
            PrinterOptions {
                color: true,
                utc: true,
                node_name: true,
                ..Default::default()
            },
            Vec::new(),
        );
        p.print_flow(&syn()).unwrap();
        let got = String::from_utf8(p.out).unwrap();
        assert_eq!(
            got,
            "Nov 25 13:20:01.000 [node-b]: \x1b[36m[2001:db8::2]:40000\x1b[0m -> \x1b[36m[2001:db8::1]:443\x1b[0m from-endpoint \x1b[32mFORWARDED\x1b[0m (TCP Flags: SYN)\n"
        );
    }

    #[test]
    fn dict_golden() {
        let got = render(Format::Dict, &[request(), syn()], false);
        assert_eq!(
            got,
            "  TIMESTAMP: Nov 25 13:20:01.123\n     SOURCE: 198.18.0.2:51234\nDESTINATION: 198.18.0.1:80 (pid 456 nginx)\n       TYPE: http-request\n    VERDICT: FORWARDED\n    SUMMARY: HTTP/1.1 GET http://198.18.0.1/page\n\
             ------------\n  TIMESTAMP: Nov 25 13:20:01.000\n     SOURCE: [2001:db8::2]:40000\nDESTINATION: [2001:db8::1]:443\n       TYPE: from-endpoint\n    VERDICT: FORWARDED\n    SUMMARY: TCP Flags: SYN\n"
        );
    }

    #[test]
    fn table_golden() {
        let got = render(Format::Table, &[request(), syn()], false);
        let want = [
            "TIMESTAMP             SOURCE                DESTINATION                     TYPE            VERDICT     SUMMARY",
            "Nov 25 13:20:01.123   198.18.0.2:51234      198.18.0.1:80 (pid 456 nginx)   http-request    FORWARDED   HTTP/1.1 GET http://198.18.0.1/page",
            "Nov 25 13:20:01.000   [2001:db8::2]:40000   [2001:db8::1]:443               from-endpoint   FORWARDED   TCP Flags: SYN",
            "",
        ]
        .join("\n");
        assert_eq!(got, want);
    }

    #[test]
    fn json_golden() {
        let got = render(Format::Json, &[syn()], false);
        assert_eq!(
            got,
            concat!(
                r#"{"time":"2026-11-25T13:20:01Z","verdict":"FORWARDED","IP":{"source":"2001:db8::2","destination":"2001:db8::1","ipVersion":"IPv6"},"#,
                r#""l4":{"TCP":{"source_port":40000,"destination_port":443,"flags":{"SYN":true}}},"Type":"L3_L4","node_name":"node-b","#,
                r#""event_type":{"type":4,"sub_type":5},"traffic_direction":"EGRESS","trace_observation_point":"FROM_ENDPOINT","is_reply":false,"#,
                r#""interface":{"index":3},"Summary":"TCP Flags: SYN","#,
                r#""extensions":{"@type":"type.googleapis.com/flowscope.FlowExtension","ip_len":60}}"#,
                "\n"
            )
        );
        let pb = render(Format::Jsonpb, &[syn()], false);
        assert!(
            pb.starts_with(r#"{"flow":{"time":"2026-11-25T13:20:01Z","#),
            "{pb}"
        );
        assert!(
            pb.ends_with("\"node_name\":\"node-b\",\"time\":\"2026-11-25T13:20:01Z\"}\n"),
            "{pb}"
        );
    }

    #[test]
    fn lost_events_and_summaries() {
        let mut p = Printer::new(PrinterOptions::default(), Vec::new());
        p.print_response(&GetFlowsResponse {
            response_types: Some(ResponseTypes::LostEvents(LostEvent {
                source: LostEventSource::PerfEventRingBuffer as i32,
                num_events_lost: 12,
                cpu: None,
            })),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            String::from_utf8(p.out).unwrap(),
            "EVENTS LOST: PERF_EVENT_RING_BUFFER CPU(unknown) 12\n"
        );
        let mut dns = request();
        dns.l7 = Some(crate::api::proto::flow::Layer7 {
            r#type: L7FlowType::Response as i32,
            latency_ns: 0,
            record: Some(Record::Dns(crate::api::proto::flow::Dns {
                query: "example.com.".into(),
                ips: vec!["93.184.216.34".into()],
                ttl: 300,
                qtypes: vec!["A".into()],
                ..Default::default()
            })),
        });
        // The flow's own summary is printed; one without (from a file) gets Cilium's.
        assert_eq!(summary(&dns), "HTTP/1.1 GET http://198.18.0.1/page");
        dns.summary.clear();
        assert_eq!(
            summary(&dns),
            "DNS Answer \"93.184.216.34\" TTL: 300 (Query example.com. A)"
        );
        assert_eq!(flow_type(&dns), "dns-response");
        if let Some(Record::Dns(d)) = dns.l7.as_mut().and_then(|l| l.record.as_mut()) {
            d.observation_source = "wire".into();
        }
        assert_eq!(flow_type(&dns), "dns-response wire");
    }

    #[test]
    fn a_drop_shows_its_reason_in_the_type_column() {
        use crate::api::proto::{
            flow::{CiliumEventType, DropReason},
            flowscope::{FlowExtension, KernelDrop},
        };
        let mut f = Flow {
            event_type: Some(CiliumEventType {
                r#type: EVENT_TYPE_DROP,
                sub_type: 0,
            }),
            ..Default::default()
        };
        assert_eq!(flow_type(&f), "drop");
        // From a Hubble peer: only Hubble's reason.
        f.drop_reason_desc = DropReason::PolicyDenied as i32;
        assert_eq!(flow_type(&f), "drop POLICY_DENIED");
        // From flowscope: the kernel's own name.
        f.extensions = Some(
            FlowExtension {
                kernel_drop: Some(KernelDrop {
                    reason: 12,
                    reason_name: "NETFILTER_DROP".into(),
                }),
                ..Default::default()
            }
            .to_any(),
        );
        assert_eq!(flow_type(&f), "drop NETFILTER_DROP");
    }

    #[test]
    fn a_kernel_tcp_event_shows_what_the_socket_did() {
        use crate::api::proto::{
            flow::CiliumEventType,
            flowscope::{FlowExtension, KernelTcpEvent},
        };
        let f = Flow {
            event_type: Some(CiliumEventType {
                r#type: EVENT_TYPE_TRACE,
                sub_type: 0,
            }),
            extensions: Some(
                FlowExtension {
                    kernel_tcp_event: Some(KernelTcpEvent {
                        kind: "RESET_SENT".into(),
                        state: "CLOSE".into(),
                        segments: 0,
                    }),
                    ..Default::default()
                }
                .to_any(),
            ),
            ..Default::default()
        };
        assert_eq!(flow_type(&f), "tcp-reset-sent CLOSE");
    }
}
