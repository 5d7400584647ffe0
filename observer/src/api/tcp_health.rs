//! The engine's [`TcpHealth`] to and from `flowscope.TcpHealth` (issue 17). Durations travel
//! as nanoseconds with 0 for "not measured" (proto3 has no optional scalars here).

use flows::record::{ConnectionRole, TcpClose, TcpDirectionHealth, TcpHealth};

use super::proto::flowscope as pb;

fn ns(v: Option<u64>) -> u64 {
    v.unwrap_or(0)
}

fn opt(v: u64) -> Option<u64> {
    (v != 0).then_some(v)
}

fn direction_to_proto(d: &TcpDirectionHealth) -> pb::TcpDirectionHealth {
    pb::TcpDirectionHealth {
        srtt_ns: ns(d.srtt_ns),
        rttvar_ns: ns(d.rttvar_ns),
        min_rtt_ns: ns(d.min_rtt_ns),
        max_rtt_ns: ns(d.max_rtt_ns),
        rtt_samples: d.rtt_samples,
        retransmitted_segments: d.retransmitted_segments,
        retransmitted_bytes: d.retransmitted_bytes,
        out_of_order_segments: d.out_of_order_segments,
        duplicate_acks: d.duplicate_acks,
        zero_window_advertisements: d.zero_window_advertisements,
        keepalives: d.keepalives,
        window_full_segments: d.window_full_segments,
        zero_window_probes: d.zero_window_probes,
    }
}

fn direction_back(d: &pb::TcpDirectionHealth) -> TcpDirectionHealth {
    // A sample of exactly 0 ns reads back as none (the wire's "not measured").
    let sampled = |v: u64| (d.rtt_samples > 0).then_some(v);
    TcpDirectionHealth {
        srtt_ns: sampled(d.srtt_ns),
        rttvar_ns: sampled(d.rttvar_ns),
        min_rtt_ns: sampled(d.min_rtt_ns),
        max_rtt_ns: sampled(d.max_rtt_ns),
        rtt_samples: d.rtt_samples,
        retransmitted_segments: d.retransmitted_segments,
        retransmitted_bytes: d.retransmitted_bytes,
        out_of_order_segments: d.out_of_order_segments,
        duplicate_acks: d.duplicate_acks,
        zero_window_advertisements: d.zero_window_advertisements,
        keepalives: d.keepalives,
        window_full_segments: d.window_full_segments,
        zero_window_probes: d.zero_window_probes,
    }
}

/// The engine's health as its proto message.
pub fn to_proto(h: &TcpHealth) -> pb::TcpHealth {
    pb::TcpHealth {
        handshake_ns: ns(h.handshake_ns),
        syn_to_syn_ack_ns: ns(h.syn_to_syn_ack_ns),
        syn_ack_to_ack_ns: ns(h.syn_ack_to_ack_ns),
        syn_retransmits: h.syn_retransmits,
        refused: h.refused,
        syn_unanswered: h.syn_unanswered,
        to_server: Some(direction_to_proto(&h.to_server)),
        to_client: Some(direction_to_proto(&h.to_client)),
        closed_by: match h.closed_by.map(|c| c.by) {
            Some(ConnectionRole::Client) => "client".into(),
            Some(ConnectionRole::Server) => "server".into(),
            None => String::new(),
        },
        closed_by_reset: h.closed_by.is_some_and(|c| c.reset),
        closed_at_ns: h.closed_by.map_or(0, |c| c.time_ns),
    }
}

/// The proto message back as the engine's health (for `observe`'s output).
pub fn from_proto(h: &pb::TcpHealth) -> TcpHealth {
    let dir =
        |d: &Option<pb::TcpDirectionHealth>| d.as_ref().map(direction_back).unwrap_or_default();
    let by = match h.closed_by.as_str() {
        "client" => Some(ConnectionRole::Client),
        "server" => Some(ConnectionRole::Server),
        _ => None,
    };
    TcpHealth {
        handshake_ns: opt(h.handshake_ns),
        syn_to_syn_ack_ns: opt(h.syn_to_syn_ack_ns),
        syn_ack_to_ack_ns: opt(h.syn_ack_to_ack_ns),
        syn_retransmits: h.syn_retransmits,
        refused: h.refused,
        syn_unanswered: h.syn_unanswered,
        to_server: dir(&h.to_server),
        to_client: dir(&h.to_client),
        closed_by: by.map(|by| TcpClose {
            by,
            reset: h.closed_by_reset,
            time_ns: h.closed_at_ns,
        }),
    }
}

/// The path srtt of a proto health (see [`TcpHealth::path_srtt_ns`]), for filters.
pub fn path_srtt_ns(h: &pb::TcpHealth) -> Option<u64> {
    from_proto(h).path_srtt_ns()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let h = TcpHealth {
            handshake_ns: Some(3_000_000),
            syn_to_syn_ack_ns: Some(2_000_000),
            syn_ack_to_ack_ns: Some(1_000_000),
            syn_retransmits: 1,
            refused: false,
            syn_unanswered: false,
            to_server: TcpDirectionHealth {
                srtt_ns: Some(2_000_000),
                rttvar_ns: Some(500_000),
                min_rtt_ns: Some(1_900_000),
                max_rtt_ns: Some(2_500_000),
                rtt_samples: 4,
                retransmitted_segments: 2,
                retransmitted_bytes: 2896,
                out_of_order_segments: 1,
                duplicate_acks: 3,
                zero_window_advertisements: 1,
                keepalives: 0,
                window_full_segments: 5,
                zero_window_probes: 2,
            },
            to_client: TcpDirectionHealth::default(),
            closed_by: Some(TcpClose {
                by: ConnectionRole::Server,
                reset: true,
                time_ns: 42,
            }),
        };
        assert_eq!(from_proto(&to_proto(&h)), h);
        assert_eq!(path_srtt_ns(&to_proto(&h)), Some(2_000_000));
    }
}
