//! `source_ip` / `destination_ip`: exact addresses or CIDR prefixes.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{any_of, Check, FilterError, FlowRef};
use crate::api::proto::flow::FlowFilter;

/// A parsed `--ip` value: an exact address or a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpMatch {
    /// Exactly this address.
    Addr(IpAddr),
    /// Any address in this prefix.
    Net(IpNet),
}

impl IpMatch {
    /// Parses `10.0.0.1` or `10.0.0.0/8` (IPv6 alike).
    pub fn parse(s: &str) -> Result<Self, FilterError> {
        let s = s.trim();
        if s.contains('/') {
            s.parse::<IpNet>()
                .map(Self::Net)
                .map_err(|_| FilterError::Ip(s.to_string()))
        } else {
            s.parse::<IpAddr>()
                .map(Self::Addr)
                .map_err(|_| FilterError::Ip(s.to_string()))
        }
    }

    /// Whether `addr` (a flow's address string) is matched.
    pub fn contains(&self, addr: &str) -> bool {
        let Ok(a) = addr.parse::<IpAddr>() else {
            return false;
        };
        match self {
            Self::Addr(x) => *x == a,
            Self::Net(n) => n.contains(&a),
        }
    }
}

fn side(
    values: &[String],
    pick: for<'a> fn(&FlowRef<'a>) -> Option<&'a str>,
) -> Result<Vec<Check>, FilterError> {
    let parsed = values
        .iter()
        .map(|v| IpMatch::parse(v))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(any_of(parsed, move |m, f| {
        pick(f).is_some_and(|a| m.contains(a))
    }))
}

/// Compiles `source_ip` and `destination_ip`.
pub fn compile(filter: &FlowFilter) -> Result<Vec<Check>, FilterError> {
    let mut checks = side(&filter.source_ip, |f| {
        f.flow.ip.as_ref().map(|i| i.source.as_str())
    })?;
    checks.extend(side(&filter.destination_ip, |f| {
        f.flow.ip.as_ref().map(|i| i.destination.as_str())
    })?);
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn table() {
        let req = http_request(); // 198.18.0.2 -> 198.18.0.1
        let syn = tcp_syn(); // 2001:db8::2 -> 2001:db8::1
        let cases: &[(&[&str], &[&str], bool, bool)] = &[
            (&["198.18.0.2"], &[], true, false),
            (&["198.18.0.1"], &[], false, false),
            (&["198.18.0.0/24"], &[], true, false),
            (&["10.0.0.0/8", "2001:db8::/32"], &[], false, true),
            (&[], &["198.18.0.1", "2001:db8::1"], true, true),
            (&[], &["2001:db8::1/128"], false, true),
            (&["198.18.0.2"], &["198.18.0.1"], true, false),
            (&["198.18.0.2"], &["198.18.0.3"], false, false),
        ];
        for (i, (src, dst, want_req, want_syn)) in cases.iter().enumerate() {
            let f = FlowFilter {
                source_ip: src.iter().map(|s| s.to_string()).collect(),
                destination_ip: dst.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            };
            assert_eq!(matches(&f, &req), *want_req, "case {i}");
            assert_eq!(matches(&f, &syn), *want_syn, "case {i}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["1.2.3", "10.0.0.0/33", "host", ""] {
            let f = FlowFilter {
                source_ip: vec![bad.into()],
                ..Default::default()
            };
            assert_eq!(
                compile(&f).err(),
                Some(FilterError::Ip(bad.to_string())),
                "{bad}"
            );
        }
    }
}
