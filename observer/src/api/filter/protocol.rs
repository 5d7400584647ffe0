//! `protocol`: L4 (tcp, udp, icmp, icmpv4, icmpv6, sctp) or L7 (http, dns, and flowscope's
//! grpc) protocol, case-insensitive.

use super::{any_of, Check, FilterError, FlowRef};
use crate::api::proto::flow::{layer4::Protocol as L4, layer7::Record, FlowFilter};

/// A protocol a flow can be filtered on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolMatch {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMPv4 or ICMPv6.
    Icmp,
    /// ICMPv4.
    Icmpv4,
    /// ICMPv6.
    Icmpv6,
    /// SCTP.
    Sctp,
    /// An L7 HTTP flow.
    Http,
    /// An L7 DNS flow.
    Dns,
    /// An L7 HTTP flow that carried gRPC.
    Grpc,
}

impl ProtocolMatch {
    /// Parses a protocol name.
    pub fn parse(s: &str) -> Result<Self, FilterError> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "tcp" => Self::Tcp,
            "udp" => Self::Udp,
            "icmp" => Self::Icmp,
            "icmpv4" => Self::Icmpv4,
            "icmpv6" => Self::Icmpv6,
            "sctp" => Self::Sctp,
            "http" => Self::Http,
            "dns" => Self::Dns,
            "grpc" => Self::Grpc,
            _ => return Err(FilterError::Protocol(s.to_string())),
        })
    }

    /// Whether the flow is of this protocol.
    pub fn matches(self, f: &FlowRef<'_>) -> bool {
        let l4 = f.flow.l4.as_ref().and_then(|l| l.protocol.as_ref());
        let l7 = f.flow.l7.as_ref().and_then(|l| l.record.as_ref());
        match self {
            Self::Tcp => matches!(l4, Some(L4::Tcp(_))),
            Self::Udp => matches!(l4, Some(L4::Udp(_))),
            Self::Icmp => matches!(l4, Some(L4::IcmPv4(_) | L4::IcmPv6(_))),
            Self::Icmpv4 => matches!(l4, Some(L4::IcmPv4(_))),
            Self::Icmpv6 => matches!(l4, Some(L4::IcmPv6(_))),
            Self::Sctp => matches!(l4, Some(L4::Sctp(_))),
            Self::Http => matches!(l7, Some(Record::Http(_))),
            Self::Dns => matches!(l7, Some(Record::Dns(_))),
            Self::Grpc => f.ext.is_some_and(|e| e.grpc.is_some()),
        }
    }
}

/// Compiles `protocol`.
pub fn compile(filter: &FlowFilter) -> Result<Vec<Check>, FilterError> {
    let parsed = filter
        .protocol
        .iter()
        .map(|p| ProtocolMatch::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(any_of(parsed, |p, f| p.matches(f)))
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::api::proto::flowscope::{FlowExtension, Grpc};

    #[test]
    fn table() {
        let req = http_request();
        let syn = tcp_syn();
        let cases: &[(&[&str], bool, bool)] = &[
            (&["tcp"], true, true),
            (&["TCP"], true, true),
            (&["http"], true, false),
            (&["udp"], false, false),
            (&["dns", "http"], true, false),
            (&["icmp"], false, false),
            (&["grpc"], false, false),
        ];
        for (i, (protos, want_req, want_syn)) in cases.iter().enumerate() {
            let f = FlowFilter {
                protocol: protos.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            };
            assert_eq!(matches(&f, &req), *want_req, "case {i}");
            assert_eq!(matches(&f, &syn), *want_syn, "case {i}");
        }
        let ext = FlowExtension {
            grpc: Some(Grpc {
                service: "a.B".into(),
                method: "C".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(ProtocolMatch::Grpc.matches(&FlowRef::new(&req, Some(&ext))));
        assert!(ProtocolMatch::parse("quic").is_err());
    }
}
