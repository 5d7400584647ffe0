//! flowscope's TCP health filters (issue 17): `min_rtt_ns` (the connection's path srtt at
//! least this: L7 flows and SYN/FIN/RST flows), `retransmits` (any retransmitted segment) and
//! `tcp_reset` (reset or refused), both on the SYN/FIN/RST flows that carry the whole health.
//! Flows without them (UDP, data segments' L3/L4 flows) never match.

use super::{Check, FilterError, FlowRef};
use crate::api::{proto::flow::FlowFilter, tcp_health::from_proto};

/// Compiles the three fields of `flowscope`; each set one must hold.
pub fn compile(filter: &FlowFilter) -> Result<Vec<Check>, FilterError> {
    let Some(ext) = filter.flowscope.as_ref() else {
        return Ok(Vec::new());
    };
    let health = |f: &FlowRef<'_>| f.ext.and_then(|e| e.tcp_health.as_ref()).map(from_proto);
    let mut checks: Vec<Check> = Vec::new();
    if ext.min_rtt_ns > 0 {
        let min = ext.min_rtt_ns;
        checks.push(Box::new(move |f: &FlowRef<'_>| {
            f.ext
                .is_some_and(|e| e.tcp_srtt_ns != 0 && e.tcp_srtt_ns >= min)
        }));
    }
    if ext.retransmits {
        checks.push(Box::new(move |f: &FlowRef<'_>| {
            health(f).is_some_and(|h| h.retransmitted_segments() > 0 || h.syn_retransmits > 0)
        }));
    }
    if ext.tcp_reset {
        checks.push(Box::new(move |f: &FlowRef<'_>| {
            health(f).is_some_and(|h| h.reset())
        }));
    }
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::api::convert::{flow_to_proto, tests as conv};
    use crate::api::proto::{flow::Flow, flowscope::FlowFilterExtension};
    use flows::record::{ConnectionRole, TcpClose, TcpDirectionHealth, TcpHealth};

    fn with_health(srtt_ms: u64, retrans: u32, reset: bool) -> Flow {
        let mut f = conv::http_request();
        f.tcp_srtt_ns = Some(srtt_ms * 1_000_000);
        f.tcp_health = Some(Box::new(TcpHealth {
            to_server: TcpDirectionHealth {
                srtt_ns: Some(srtt_ms * 1_000_000),
                rtt_samples: 1,
                retransmitted_segments: retrans,
                ..Default::default()
            },
            closed_by: reset.then_some(TcpClose {
                by: ConnectionRole::Client,
                reset: true,
                time_ns: 1,
            }),
            ..Default::default()
        }));
        flow_to_proto(&f, "node-a")
    }

    #[test]
    fn table() {
        let ext = |min_rtt_ns, retransmits, tcp_reset| FlowFilter {
            flowscope: Some(FlowFilterExtension {
                min_rtt_ns,
                retransmits,
                tcp_reset,
                ..Default::default()
            }),
            ..Default::default()
        };
        let ms = 1_000_000;
        let cases = [
            (ext(10 * ms, false, false), with_health(20, 0, false), true),
            (ext(30 * ms, false, false), with_health(20, 0, false), false),
            (ext(0, true, false), with_health(1, 2, false), true),
            (ext(0, true, false), with_health(1, 0, false), false),
            (ext(0, false, true), with_health(1, 0, true), true),
            (ext(0, false, true), with_health(1, 0, false), false),
            (ext(10 * ms, true, true), with_health(20, 1, true), true),
            (ext(10 * ms, true, true), with_health(20, 0, true), false),
        ];
        for (i, (filter, flow, want)) in cases.iter().enumerate() {
            assert_eq!(matches(filter, flow), *want, "case {i}");
            // Without health nothing matches.
            assert!(!matches(filter, &http_request()), "case {i}");
        }
    }
}
