//! `tcp_flags`: a TCP flow matches an entry when it has every flag set in that entry.

use super::{any_of, Check, FilterError, FlowRef};
use crate::api::proto::flow::{layer4::Protocol, FlowFilter, TcpFlags};

fn bits(f: &TcpFlags) -> u16 {
    [f.fin, f.syn, f.rst, f.psh, f.ack, f.urg, f.ece, f.cwr, f.ns]
        .iter()
        .enumerate()
        .fold(0, |acc, (i, set)| acc | (u16::from(*set) << i))
}

/// Parses `SYN,ACK` (case-insensitive, comma-separated) into one entry.
pub fn parse_flags(s: &str) -> Result<TcpFlags, FilterError> {
    let mut out = TcpFlags::default();
    for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let slot = match name.to_ascii_uppercase().as_str() {
            "FIN" => &mut out.fin,
            "SYN" => &mut out.syn,
            "RST" => &mut out.rst,
            "PSH" => &mut out.psh,
            "ACK" => &mut out.ack,
            "URG" => &mut out.urg,
            "ECE" => &mut out.ece,
            "CWR" => &mut out.cwr,
            "NS" => &mut out.ns,
            _ => return Err(FilterError::TcpFlag(name.to_string())),
        };
        *slot = true;
    }
    if bits(&out) == 0 {
        return Err(FilterError::TcpFlag(s.to_string()));
    }
    Ok(out)
}

/// Compiles `tcp_flags`.
pub fn compile(filter: &FlowFilter) -> Result<Vec<Check>, FilterError> {
    let wanted: Vec<u16> = filter.tcp_flags.iter().map(bits).collect();
    Ok(any_of(wanted, |want, f: &FlowRef<'_>| {
        match f.flow.l4.as_ref().and_then(|l| l.protocol.as_ref()) {
            Some(Protocol::Tcp(t)) => {
                let have = t.flags.as_ref().map(bits).unwrap_or(0);
                have & want == *want
            }
            _ => false,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn table() {
        let syn = tcp_syn(); // SYN only
        let req = http_request(); // L7 flow: no flags
        let cases: &[(&[&str], bool, bool)] = &[
            (&["SYN"], true, false),
            (&["syn,ack"], false, false),
            (&["FIN", "SYN"], true, false),
            (&["RST"], false, false),
        ];
        for (i, (flags, want_syn, want_req)) in cases.iter().enumerate() {
            let f = FlowFilter {
                tcp_flags: flags.iter().map(|s| parse_flags(s).unwrap()).collect(),
                ..Default::default()
            };
            assert_eq!(matches(&f, &syn), *want_syn, "case {i}");
            assert_eq!(matches(&f, &req), *want_req, "case {i}");
        }
        assert!(parse_flags("SYN,BOGUS").is_err());
        assert!(parse_flags("").is_err());
    }
}
