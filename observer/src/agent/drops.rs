//! Kernel drop reports ([`ebpf_kprobe::drops`]) as Hubble flows: verdict DROPPED, Hubble's
//! drop reason where one matches, the kernel's reason name in the flowscope extension.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use ebpf_kprobe::{
    drops::{DropEvent, DropOptions, DropReasons, EventKind, KernelDrops},
    SocketTuple, Transport,
};
use flows::{
    packet::{Direction, TcpFlags},
    record::{Flow, FlowType, IpInfo, Layer4, Verdict},
};
use tracing::{info, warn};

use crate::api::{
    drop_reason,
    proto::flowscope::{KernelDrop, KernelTcpEvent},
};
use crate::config::AgentConfig;

/// The attached drop program, shared with the status provider (for its counters); `None`
/// once detached.
pub type SharedDrops = Arc<Mutex<Option<KernelDrops>>>;

/// Loads the kfree_skb program unless the configuration turns it off (None). Failing to is
/// not fatal (older kernels, no BTF): it is logged, and `flowscope status` shows
/// `kernel_drops_unavailable 1`.
pub fn start_drops(cfg: &AgentConfig) -> Option<Result<KernelDrops, String>> {
    if !cfg.drops {
        info!("kernel drop reports off (drops = false)");
        return None;
    }
    Some(
        match KernelDrops::start(&DropOptions {
            rate_per_sec: cfg.drops_rate_per_cpu,
            burst: cfg.drops_rate_per_cpu,
            ..DropOptions::default()
        }) {
            Ok(d) => {
                info!(
                    attached = %d.attached(),
                    reasons = d.reasons().len(),
                    "kernel drop reports"
                );
                Ok(d)
            }
            Err(e) => {
                warn!("kernel drop reports unavailable: {e}");
                Err(e.to_string())
            }
        },
    )
}

/// The counters `flowscope status` and /metrics show for drop reports.
pub fn drop_counters(drops: &SharedDrops, unavailable: bool) -> Vec<(String, u64)> {
    let mut out = vec![(
        "kernel_drops_unavailable".to_string(),
        u64::from(unavailable),
    )];
    if let Some(d) = drops.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        out.push((
            "kernel_tcp_tracepoints_missing".to_string(),
            d.tcp_tracepoints_missing() as u64,
        ));
        out.push((
            "kernel_listen_overflow_hook_missing".to_string(),
            u64::from(d.listen_overflow_hook_missing()),
        ));
        out.extend(
            d.kernel_counters()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v)),
        );
    }
    out
}

/// The L3/L4 flow of a kernel-reported packet or socket event (owner not yet filled), at wall
/// time `ts_ns`.
fn kernel_flow(
    ev: &DropEvent,
    ts_ns: u64,
    verdict: Verdict,
    traffic_direction: Direction,
    ifindex: u32,
    ip_len: u32,
) -> Flow {
    let l4 = match ev.transport {
        Transport::Tcp => Layer4::Tcp {
            source_port: ev.source.1,
            destination_port: ev.destination.1,
            flags: TcpFlags(ev.tcp_flags),
        },
        Transport::Udp => Layer4::Udp {
            source_port: ev.source.1,
            destination_port: ev.destination.1,
        },
    };
    Flow {
        time_ns: ts_ns,
        verdict,
        flow_type: FlowType::L3L4,
        ip: IpInfo::new(ev.source.0, ev.destination.0),
        l4,
        l7: None,
        traffic_direction,
        is_reply: None,
        ifindex,
        socket_cookie: ev.cookie,
        ip_len,
        payload_bytes: 0,
        trace_context: None,
        process: None,
        peer_process: None,
        tcp_health: None,
        tcp_srtt_ns: None,
        l7_source: None,
    }
}

/// The flow of a drop (owner not yet filled) and its kernel reason, at wall time `ts_ns`.
pub fn drop_flow(ev: &DropEvent, reasons: &DropReasons, ts_ns: u64) -> (Flow, KernelDrop) {
    // kfree_skb runs wherever the stack gave up, not at a capture point.
    let flow = kernel_flow(
        ev,
        ts_ns,
        Verdict::Dropped,
        Direction::Unknown,
        ev.ifindex.unwrap_or(0),
        ev.len,
    );
    let reason_name = match reasons.name(ev.reason) {
        Some(n) => n.to_string(),
        // The kernel has no number for it (before 6.15): the name it uses since.
        None if ev.reason == ebpf_kprobe::drops::LISTEN_OVERFLOW_UNNUMBERED => {
            "TCP_LISTEN_OVERFLOW".to_string()
        }
        None => drop_reason::unnamed_reason(ev.reason),
    };
    (
        flow,
        KernelDrop {
            reason: ev.reason,
            reason_name,
        },
    )
}

/// TCP states as include/net/tcp_states.h numbers them (stable kernel ABI: the tracepoints
/// print them with these numbers).
const TCP_STATES: [&str; 13] = [
    "UNKNOWN",
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
    "NEW_SYN_RECV",
];

/// The flow of a kernel TCP event (retransmission, reset sent or received; owner not yet
/// filled), or `None` for a drop. Verdict FORWARDED: the segment went out (or came in); the
/// extension says what the socket did. A received RST travels from the peer.
pub fn tcp_event_flow(ev: &DropEvent, ts_ns: u64) -> Option<(Flow, KernelTcpEvent)> {
    let (kind, direction) = match ev.kind {
        EventKind::Drop => return None,
        EventKind::Retransmit => ("RETRANSMIT", Direction::Egress),
        EventKind::ResetSent => ("RESET_SENT", Direction::Egress),
        EventKind::ResetReceived => ("RESET_RECEIVED", Direction::Ingress),
    };
    let flow = kernel_flow(ev, ts_ns, Verdict::Forwarded, direction, 0, 0);
    let state = TCP_STATES
        .get(usize::from(ev.tcp_state))
        .map_or_else(|| format!("UNKNOWN_{}", ev.tcp_state), |s| s.to_string());
    Some((
        flow,
        KernelTcpEvent {
            kind: kind.into(),
            state,
            segments: u32::from(ev.segments),
        },
    ))
}

/// The sockets that may own a dropped packet, most likely first: the sender's (a local
/// process whose packet was refused), then the addressee's.
pub fn candidate_tuples(ev: &DropEvent) -> [SocketTuple; 2] {
    let src = SocketAddr::new(ev.source.0, ev.source.1);
    let dst = SocketAddr::new(ev.destination.0, ev.destination.1);
    [
        SocketTuple {
            proto: ev.transport,
            local: src,
            remote: dst,
        },
        SocketTuple {
            proto: ev.transport,
            local: dst,
            remote: src,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syn_drop(reason: u32, cookie: Option<u64>) -> DropEvent {
        DropEvent {
            ts_ns: 1,
            reason,
            source: ("198.18.0.2".parse().unwrap(), 40000),
            destination: ("198.18.0.1".parse().unwrap(), 80),
            transport: Transport::Tcp,
            tcp_flags: 0x02,
            ifindex: Some(3),
            netns: None,
            cookie,
            len: 60,
            kind: EventKind::Drop,
            tcp_state: 0,
            segments: 0,
        }
    }

    #[test]
    fn kernel_tcp_events_are_forwarded_flows_with_the_sockets_state() {
        let mut ev = syn_drop(0, Some(5));
        assert!(tcp_event_flow(&ev, 1).is_none(), "a drop");
        ev.kind = EventKind::Retransmit;
        ev.tcp_state = 1;
        ev.segments = 2;
        let (f, k) = tcp_event_flow(&ev, 9).unwrap();
        assert_eq!(
            (f.verdict, f.traffic_direction),
            (Verdict::Forwarded, Direction::Egress)
        );
        assert_eq!(f.socket_cookie, Some(5));
        assert_eq!(
            (k.kind.as_str(), k.state.as_str(), k.segments),
            ("RETRANSMIT", "ESTABLISHED", 2)
        );
        ev.kind = EventKind::ResetReceived;
        ev.tcp_state = 8;
        let (f, k) = tcp_event_flow(&ev, 9).unwrap();
        assert_eq!(f.traffic_direction, Direction::Ingress);
        assert_eq!(
            (k.kind.as_str(), k.state.as_str()),
            ("RESET_RECEIVED", "CLOSE_WAIT")
        );
        ev.tcp_state = 40;
        assert_eq!(tcp_event_flow(&ev, 9).unwrap().1.state, "UNKNOWN_40");
    }

    #[test]
    fn a_syn_dropped_by_netfilter() {
        let reasons =
            DropReasons::from_pairs([(1, "SKB_CONSUMED"), (12, "SKB_DROP_REASON_NETFILTER_DROP")]);
        let (f, k) = drop_flow(&syn_drop(12, Some(7)), &reasons, 99);
        assert_eq!(f.verdict, Verdict::Dropped);
        assert_eq!(f.time_ns, 99);
        assert_eq!(f.socket_cookie, Some(7));
        assert_eq!(
            f.l4,
            Layer4::Tcp {
                source_port: 40000,
                destination_port: 80,
                flags: TcpFlags::SYN
            }
        );
        assert_eq!(k.reason_name, "NETFILTER_DROP");
        assert_eq!(k.reason, 12);
        let (w, _) = crate::api::convert::flow_to_wire(&f, "n");
        assert_eq!(w.verdict, crate::api::proto::flow::Verdict::Dropped as i32);
    }

    #[test]
    fn a_listen_overflow_is_named_where_the_kernel_has_no_number_for_it() {
        let ev = syn_drop(ebpf_kprobe::drops::LISTEN_OVERFLOW_UNNUMBERED, None);
        let (_, k) = drop_flow(&ev, &DropReasons::default(), 0);
        assert_eq!(k.reason_name, "TCP_LISTEN_OVERFLOW");
    }

    #[test]
    fn an_unnamed_reason_keeps_its_number() {
        let (_, k) = drop_flow(&syn_drop(70000, None), &DropReasons::default(), 0);
        assert_eq!(k.reason_name, "UNKNOWN_70000");
    }

    #[test]
    fn sender_first() {
        let [s, r] = candidate_tuples(&syn_drop(3, None));
        assert_eq!(s.local, "198.18.0.2:40000".parse().unwrap());
        assert_eq!(r.local, "198.18.0.1:80".parse().unwrap());
    }
}
