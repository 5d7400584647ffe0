//! `source_port` / `destination_port`: TCP, UDP and SCTP ports.

use super::{any_of, Check, FilterError, FlowRef};
use crate::api::proto::flow::{layer4::Protocol, FlowFilter};

/// `(source, destination)` ports of the flow, when it has ports.
pub fn ports(f: &FlowRef<'_>) -> Option<(u32, u32)> {
    match f.flow.l4.as_ref()?.protocol.as_ref()? {
        Protocol::Tcp(t) => Some((t.source_port, t.destination_port)),
        Protocol::Udp(u) => Some((u.source_port, u.destination_port)),
        Protocol::Sctp(s) => Some((s.source_port, s.destination_port)),
        _ => None,
    }
}

/// Parses a port number.
pub fn parse_port(s: &str) -> Result<u32, FilterError> {
    s.trim()
        .parse::<u16>()
        .map(u32::from)
        .map_err(|_| FilterError::Port(s.to_string()))
}

fn side(values: &[String], source: bool) -> Result<Vec<Check>, FilterError> {
    let parsed = values
        .iter()
        .map(|v| parse_port(v))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(any_of(parsed, move |p, f| {
        ports(f).is_some_and(|(s, d)| if source { s == *p } else { d == *p })
    }))
}

/// Compiles `source_port` and `destination_port`.
pub fn compile(filter: &FlowFilter) -> Result<Vec<Check>, FilterError> {
    let mut checks = side(&filter.source_port, true)?;
    checks.extend(side(&filter.destination_port, false)?);
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn table() {
        let req = http_request(); // 51234 -> 80
        let syn = tcp_syn(); // 40000 -> 443
        let cases: &[(&[&str], &[&str], bool, bool)] = &[
            (&["51234"], &[], true, false),
            (&[], &["80"], true, false),
            (&[], &["80", "443"], true, true),
            (&["80"], &[], false, false),
            (&["40000"], &["443"], false, true),
            (&["40000"], &["80"], false, false),
        ];
        for (i, (src, dst, want_req, want_syn)) in cases.iter().enumerate() {
            let f = FlowFilter {
                source_port: src.iter().map(|s| s.to_string()).collect(),
                destination_port: dst.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            };
            assert_eq!(matches(&f, &req), *want_req, "case {i}");
            assert_eq!(matches(&f, &syn), *want_syn, "case {i}");
        }
        for bad in ["65536", "-1", "http"] {
            let f = FlowFilter {
                destination_port: vec![bad.into()],
                ..Default::default()
            };
            assert_eq!(compile(&f).err(), Some(FilterError::Port(bad.into())));
        }
    }
}
