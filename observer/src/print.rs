//! Printers for engine records, shared by `replay` and the agent.
//!
//! `compact` mirrors `hubble observe -o compact`: one line per record,
//! `TIME: SRC -> DST EVENT VERDICT (SUMMARY)`. `json` is one JSON object per line.

use std::fmt::Write as _;
use std::net::IpAddr;

use flows::packet::Direction;
use flows::record::{
    attr, AttributeValue, Flow, L7Record, L7Type, Layer4, ProcessInfo, Record, Span, Verdict,
};

/// Writes one record as a JSON object and a newline, straight into `w` (no `String` per
/// record; the agent and `replay -o json` print this way).
pub fn write_json_line<W: std::io::Write>(w: &mut W, record: &Record) -> std::io::Result<()> {
    serde_json::to_writer(&mut *w, record).map_err(std::io::Error::from)?;
    w.write_all(b"\n")
}

/// One `hubble observe`-style compact line (no trailing newline).
pub fn compact_line(record: &Record) -> String {
    match record {
        Record::Flow(f) => compact_flow(f),
        Record::Span(s) => compact_span(s),
    }
}

fn endpoint(addr: IpAddr, port: Option<u16>, process: Option<&ProcessInfo>) -> String {
    let mut s = match (addr, port) {
        (IpAddr::V6(a), Some(p)) => format!("[{a}]:{p}"),
        (a, Some(p)) => format!("{a}:{p}"),
        (a, None) => a.to_string(),
    };
    if let Some(p) = process {
        let _ = write!(s, " (pid {}", p.pid);
        if let Some(comm) = &p.comm {
            let _ = write!(s, " {comm}");
        }
        s.push(')');
    }
    s
}

fn verdict(v: Verdict) -> &'static str {
    match v {
        Verdict::Forwarded => "FORWARDED",
        Verdict::Dropped => "DROPPED",
    }
}

fn compact_flow(f: &Flow) -> String {
    let ports = f.l4.ports();
    // The process belongs to the local socket: the source when it sent, the destination when
    // it received (ingress) — print it beside that side like hubble prints endpoint ids.
    let (src_proc, dst_proc) = match f.traffic_direction {
        Direction::Ingress => (None, f.process.as_ref()),
        _ => (f.process.as_ref(), None),
    };
    let src = endpoint(f.ip.source, ports.map(|p| p.0), src_proc);
    let dst = endpoint(f.ip.destination, ports.map(|p| p.1), dst_proc);
    let (event, summary) = match &f.l7 {
        Some(l7) => match (&l7.record, l7.r#type) {
            (L7Record::Http(h), L7Type::Request) => (
                "http-request",
                format!("{} {} {}", h.protocol, h.method, h.url),
            ),
            (L7Record::Http(h), L7Type::Response) => (
                "http-response",
                format!(
                    "{} {} {}ms ({} {})",
                    h.protocol,
                    h.code.unwrap_or(0),
                    l7.latency_ns.unwrap_or(0) / 1_000_000,
                    h.method,
                    h.url
                ),
            ),
            (L7Record::Dns(d), L7Type::Request) => (
                "dns-request",
                format!("DNS Query {} {}", d.query, d.qtypes.join(",")),
            ),
            (L7Record::Dns(d), L7Type::Response) => {
                let ips: Vec<String> = d.ips.iter().map(|i| i.to_string()).collect();
                let mut s = format!("DNS Answer \"{}\"", ips.join(","));
                if let Some(ttl) = d.ttl {
                    let _ = write!(s, " TTL: {ttl}");
                }
                if !d.cnames.is_empty() {
                    let _ = write!(s, " CNAMEs: \"{}\"", d.cnames.join(","));
                }
                let _ = write!(s, " (Query {} {})", d.query, d.qtypes.join(","));
                if let Some(rcode) = d.rcode.filter(|r| *r != 0) {
                    let _ = write!(s, " RCode: {rcode}");
                }
                ("dns-response", s)
            }
        },
        None => {
            let event = match f.traffic_direction {
                Direction::Egress => "to-stack",
                _ => "to-endpoint",
            };
            let summary = match f.l4 {
                Layer4::Tcp { flags, .. } => format!("TCP Flags: {flags}"),
                Layer4::Udp { .. } => "UDP".to_string(),
                Layer4::Icmpv4 { r#type, code } => {
                    format!("ICMPv4 type {type} code {code}", type = r#type)
                }
                Layer4::Icmpv6 { r#type, code } => {
                    format!("ICMPv6 type {type} code {code}", type = r#type)
                }
                Layer4::Other { protocol } => format!("IP proto {protocol}"),
            };
            (event, summary)
        }
    };
    format!(
        "{}: {src} -> {dst} {event} {} ({summary})",
        stamp_milli(f.time_ns),
        verdict(f.verdict)
    )
}

fn attr_str(s: &Span, key: &str) -> String {
    match s.attributes.get(key) {
        Some(AttributeValue::String(v)) => v.clone(),
        Some(AttributeValue::Int(v)) => v.to_string(),
        Some(AttributeValue::Bool(v)) => v.to_string(),
        None => String::new(),
    }
}

fn compact_span(s: &Span) -> String {
    let client = format!(
        "{}:{}",
        attr_str(s, attr::CLIENT_ADDRESS),
        attr_str(s, attr::CLIENT_PORT)
    );
    let server = format!(
        "{}:{}",
        attr_str(s, attr::SERVER_ADDRESS),
        attr_str(s, attr::SERVER_PORT)
    );
    let status = attr_str(s, attr::HTTP_RESPONSE_STATUS_CODE);
    let mut line = format!(
        "{}: {client} -> {server} span {:?} {:?} ({} {} {} {}ms trace={} span={}",
        stamp_milli(s.end_time_ns),
        s.kind,
        s.status.code,
        s.name,
        attr_str(s, attr::URL_PATH),
        if status.is_empty() { "-" } else { &status },
        s.end_time_ns.saturating_sub(s.start_time_ns) / 1_000_000,
        s.trace_id,
        s.span_id,
    );
    if let Some(p) = s.parent_span_id {
        let _ = write!(line, " parent={p}");
    }
    if let Some(m) = &s.status.message {
        let _ = write!(line, " error=\"{m}\"");
    }
    line.push(')');
    line
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `hubble observe`'s compact stamp (Go's StampMilli, UTC): `Nov 25 13:20:01.123`.
pub fn stamp_milli(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    // H. Hinnant's civil_from_days: days since 1970-01-01 -> (month, day).
    let z = (secs / 86_400) as i64 + 719_468;
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let sod = secs % 86_400;
    format!(
        "{} {:>2} {:02}:{:02}:{:02}.{:03}",
        MONTHS[(month - 1) as usize],
        day,
        sod / 3600,
        sod % 3600 / 60,
        sod % 60,
        ns % 1_000_000_000 / 1_000_000
    )
}

#[cfg(test)]
mod tests {
    use super::stamp_milli;

    #[test]
    fn stamps_like_hubble() {
        // 2026-11-25T13:20:01.123Z
        assert_eq!(
            stamp_milli(1_795_612_801_123_000_000),
            "Nov 25 13:20:01.123"
        );
        assert_eq!(stamp_milli(0), "Jan  1 00:00:00.000");
    }
}
