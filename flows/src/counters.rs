//! Engine counters: every drop, cap hit and parse error, by reason.
//!
//! One plain `u64` per reason (the engine is single-threaded per worker, so no atomics).
//! [`Counters::iter`] yields `(name, value)` pairs so the binary can print and export them
//! without knowing the list.

macro_rules! counters {
    ($($(#[doc = $doc:literal])+ $name:ident,)*) => {
        /// Running totals kept by the engine; read them with [`Counters::iter`].
        #[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub struct Counters {
            $($(#[doc = $doc])+ pub $name: u64,)*
        }

        impl Counters {
            /// Every counter as `(snake_case_name, value)`, in declaration order.
            pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
                [$((stringify!($name), self.$name),)*].into_iter()
            }

            /// Adds every counter of `other` (the totals of several engine shards).
            pub fn add(&mut self, other: &Counters) {
                $(self.$name += other.$name;)*
            }
        }
    };
}

counters! {
    /// Frames handed to the engine.
    frames,
    /// Frames cut short inside a header.
    decode_truncated,
    /// Frames that carry something other than IPv4/IPv6.
    decode_not_ip,
    /// Frames with more VLAN tags than we unwrap.
    decode_too_many_vlan_tags,
    /// Frames with a malformed IP header or extension header.
    decode_bad_ip_header,
    /// IP fragments seen (handed to reassembly; dropped when `max_ip_fragmented_datagrams` is 0).
    decode_ip_fragment,
    /// Frames with a malformed TCP header.
    decode_bad_tcp_header,
    /// Packets decoded and given to the flow table.
    packets,
    /// IP bytes (per the IP length field) of decoded packets captured arriving at this host.
    ip_bytes_ingress,
    /// IP bytes of decoded packets captured leaving this host.
    ip_bytes_egress,
    /// IP bytes of decoded packets whose capture direction is unknown (e.g. pcap files).
    ip_bytes_unknown_direction,
    /// Connections/conversations added to the flow table.
    flows_created,
    /// New flows refused because the table was at `max_flows`.
    flows_refused_table_full,
    /// Flows evicted after `idle_timeout_ns` without packets.
    flows_evicted_idle,
    /// TCP flows evicted after FIN in both directions or RST (after a short linger).
    flows_evicted_closed,
    /// Flows evicted by `flush` at the end of a capture.
    flows_evicted_flush,
    /// TCP segments entirely made of bytes already delivered (retransmits, duplicates).
    tcp_retransmit_segments,
    /// Bytes of overlapping segments that differed from the first copy (first copy wins).
    tcp_overlap_conflict_bytes,
    /// TCP segments that arrived ahead of a hole and were buffered.
    tcp_out_of_order_segments,
    /// TCP segments too far ahead of the stream to be plausible, dropped.
    tcp_out_of_window_segments,
    /// Holes skipped because a flow's buffered bytes passed `max_flow_buffer_bytes`.
    tcp_gaps_flow_cap,
    /// Holes skipped because all flows' buffered bytes passed `max_total_buffer_bytes`.
    tcp_gaps_total_budget,
    /// Holes skipped after `gap_timeout_ns`.
    tcp_gaps_timeout,
    /// Holes skipped because the peer acknowledged past them (the capture lost them).
    tcp_gaps_peer_acked,
    /// Holes skipped when a flow was closed or flushed.
    tcp_gaps_on_close,
    /// Payload bytes missing from the capture (snapped by the capture length).
    tcp_snapped_bytes,
    /// Capture hints given: message bodies of at least `capture_hint_min_bytes` the decoder
    /// passes over unread, whose segments the capture may cut to their headers (the cut bytes
    /// are counted in `tcp_snapped_bytes`).
    capture_hints,
    /// Bytes of stream skipped over in gaps, whatever the reason.
    tcp_gap_bytes,
    /// TCP connections first seen after their SYN.
    tcp_mid_stream_starts,
    /// Directions joined mid-way on a keep-alive probe (RFC 9293 §3.8.4: zero or one byte at SND.NXT - 1): the stream starts after it, its byte not delivered.
    tcp_keepalives_at_join,
    /// Flows whose bytes matched no L7 protocol; no further L7 parsing is tried.
    l7_unrecognised_flows,
    /// HTTP/1 requests parsed.
    http1_requests,
    /// HTTP/1 final responses parsed.
    http1_responses,
    /// HTTP/1 informational (1xx) responses seen.
    http1_informational,
    /// HTTP/1 messages that failed to parse; the flow is marked not-HTTP.
    http1_parse_errors,
    /// HTTP/1 heads larger than `max_header_bytes` (skipped, stream resynced).
    http1_header_too_large,
    /// HTTP/1 heads with more than `max_headers` fields (skipped, stream resynced).
    http1_too_many_headers,
    /// Malformed chunked body framing (stream resynced).
    http1_bad_chunked,
    /// Times an HTTP/1 stream searched for the next message start after a gap.
    http1_resyncs,
    /// Bytes discarded while looking for the next message start.
    http1_resync_skipped_bytes,
    /// Responses with no request to pair with.
    http1_unpaired_responses,
    /// Requests dropped because `max_pending_requests` were already waiting.
    http1_pending_overflow,
    /// Requests forgotten because a gap made pairing uncertain.
    http1_requests_lost_in_gap,
    /// Requests that never got a response (emitted as error spans).
    http1_unanswered,
    /// Connections upgraded (101) or tunnelled (CONNECT); HTTP/1 parsing stops there (an h2c upgrade goes on as HTTP/2, a CONNECT tunnel's bytes to a fresh protocol detection).
    http1_upgrades,
    /// Messages cut off by the end of the connection.
    http1_truncated_messages,
    /// DNS queries parsed.
    dns_queries,
    /// DNS responses parsed.
    dns_responses,
    /// DNS messages that failed to parse.
    dns_parse_errors,
    /// DNS responses with no matching query.
    dns_unmatched_responses,
    /// DNS queries dropped because `max_pending_requests` were waiting on a flow.
    dns_pending_overflow,
    /// DNS queries that never got a response.
    dns_unanswered,
    /// HTTP/2 frames decoded (headers that passed RFC 9113 §6 checks).
    h2_frames,
    /// HTTP/2 DATA frames seen.
    h2_data_frames,
    /// HTTP/2 frames that broke an RFC 9113 rule (ignored; field blocks among them lose HPACK state).
    h2_frame_errors,
    /// HTTP/2 non-DATA frames over `h2_max_frame_bytes`, skipped unbuffered.
    h2_frames_oversized,
    /// HTTP/2 connections whose client preface did not match (RFC 9113 §3.4).
    h2_bad_preface,
    /// Times an HTTP/2 direction searched for a frame boundary (joined mid-way, gap, bad frame).
    h2_resyncs,
    /// Bytes skipped while searching for an HTTP/2 frame boundary.
    h2_sync_skipped_bytes,
    /// Capture gaps inside HTTP/2 streams.
    h2_gaps,
    /// HTTP/1.1 connections upgraded to HTTP/2 (`Upgrade: h2c` + 101).
    h2_upgrades,
    /// HTTP/2 connections whose client/server roles were the other way round from the
    /// engine's guess (joined mid-way; learned from `:method`/`:status`).
    h2_roles_swapped,
    /// HTTP/2 streams tracked.
    h2_streams,
    /// HTTP/2 streams not tracked because `h2_max_streams` were open or their kept fields passed `h2_max_stream_state_bytes`.
    h2_streams_over_cap,
    /// HTTP/2 frames for streams already reported (ignored).
    h2_frames_on_closed_streams,
    /// HTTP/2 request field blocks decoded.
    h2_requests,
    /// HTTP/2 final response field blocks decoded.
    h2_responses,
    /// HTTP/2 streams ended by RST_STREAM.
    h2_streams_reset,
    /// HTTP/2 streams a GOAWAY's Last-Stream-ID left unprocessed.
    h2_streams_refused_by_goaway,
    /// HTTP/2 GOAWAY frames.
    h2_goaways,
    /// HTTP/2 streams still open when the connection ended.
    h2_streams_unfinished,
    /// HTTP/2 streams reported with something unknown: frames unseen (joined mid-way, gaps) or fields from unknown HPACK entries.
    h2_streams_partial,
    /// HPACK field blocks decoded.
    h2_field_blocks,
    /// HPACK field blocks not decoded (gap, oversized, broken framing); that direction's table is forgotten.
    h2_field_blocks_lost,
    /// HPACK field blocks decoded while older dynamic table entries were unknown.
    h2_field_blocks_with_partial_table,
    /// Header fields whose name or value stayed unknown (dynamic entries from before the capture).
    h2_hpack_unknown_fields,
    /// Header fields resolved exactly from entries inserted since capture began while older ones were unknown.
    h2_hpack_resolved_in_partial_table,
    /// HPACK decoding errors (RFC 7541); the table is forgotten.
    h2_hpack_errors,
    /// HPACK table size updates above SETTINGS_HEADER_TABLE_SIZE (RFC 7541 §6.3).
    h2_hpack_bad_size_updates,
    /// Field blocks whose decoded size passed `h2_max_header_list_bytes` (HPACK bombs); later fields dropped.
    h2_header_list_capped,
    /// Field blocks over `h2_max_header_block_bytes` (dropped).
    h2_header_block_too_large,
    /// Field blocks cut for too many CONTINUATION frames or bytes (CVE-2024-27316).
    h2_continuation_flood,
    /// CONTINUATION frames with no open field block (its HEADERS was before the capture).
    h2_orphan_continuations,
    /// gRPC calls reported.
    grpc_calls,
    /// `traceparent` values that failed validation (a fresh trace id is used; marked on the record).
    trace_invalid_traceparent,
    /// `tracestate` list-members dropped as invalid, duplicate or over 32.
    trace_tracestate_dropped_members,
    /// Records queued for `poll_record` (spans count even when `EngineConfig::spans` is off and they are not built).
    records_emitted,
    /// Records dropped because `max_queued_records` were waiting to be polled.
    records_dropped_queue_full,
    // IP fragment reassembly (RFC 791 §3.2, RFC 8200 §4.5); `ip_frag_dropped_*` count
    // datagrams (each once, with all its fragments), the others count fragments.
    /// Datagrams reassembled from fragments and decoded like unfragmented packets.
    ip_frag_reassembled,
    /// Reassembled datagrams a fragment of which the capture cut short (decoded as snapped).
    ip_frag_reassembled_snapped,
    /// Fragments dropped as exact duplicates of one held (RFC 5722 §4); the datagram goes on.
    ip_frag_duplicates,
    /// Fragments dropped as unusable (IPv6 M set and a length not a multiple of 8, no data,
    /// cut inside a header, or a Fragment header inside a reassembled datagram).
    ip_frag_malformed,
    /// Fragments dropped because their datagram was already abandoned.
    ip_frag_late_fragments,
    /// Datagrams abandoned because two fragments overlapped (RFC 5722; IPv4 too, like Linux).
    ip_frag_dropped_overlap,
    /// Datagrams abandoned because their fragments disagreed on where the datagram ends.
    ip_frag_dropped_inconsistent_length,
    /// Datagrams abandoned for passing 65535 bytes (RFC 791 §3.1, RFC 8200 §4.5).
    ip_frag_dropped_too_big,
    /// Datagrams still incomplete `ip_fragment_timeout_ns` after their first fragment.
    ip_frag_dropped_timeout,
    /// Datagrams dropped (oldest first) to stay under `max_ip_fragment_bytes`.
    ip_frag_dropped_bytes_cap,
    /// Datagrams dropped (oldest first) to stay under `max_ip_fragmented_datagrams`.
    ip_frag_dropped_datagrams_cap,
    /// Datagrams still incomplete when the capture ended (`flush`): orphans, lost fragments.
    ip_frag_dropped_incomplete_at_flush,
    // DNS over TCP and DNS pairing (issue 15, kind 3).
    /// DNS responses with the TC bit (cut to fit; the client retries over TCP).
    dns_truncated_responses,
    /// DNS queries resent with the ID and question of one still pending (paired with the first).
    dns_retransmitted_queries,
    /// DNS responses whose ID matched a pending query but whose question did not (RFC 5452 §9.1); reported response-only.
    dns_question_mismatches,
    /// TCP connections on a DNS port whose first bytes are no DNS message (not decoded).
    dns_tcp_not_dns,
    /// Times a DNS-over-TCP direction searched for a message start (joined mid-way, or a gap).
    dns_tcp_resyncs,
    /// Bytes skipped while searching for a DNS-over-TCP message start.
    dns_tcp_resync_skipped_bytes,
    /// DNS-over-TCP directions that found no message start within the search budget (no longer decoded).
    dns_tcp_resync_failed,
    /// DNS-over-TCP messages a capture gap cut (not decoded; framing kept when the gap's length is known).
    dns_tcp_messages_lost_in_gap,
    /// DNS-over-TCP messages cut off by the end of the connection.
    dns_tcp_truncated_messages,
    /// DNS-over-HTTPS bodies not decoded: cut by a capture gap or by the end of the connection.
    dns_doh_bodies_incomplete,
    // HTTP/1 fidelity (issue 15 kinds 4-6, 10): lenient heads, message length rules.
    /// HTTP/1 heads httparse rejected that the lenient parser read (RFC 9112 §2.2: odd
    /// versions, status codes as text, odd reason phrases, HTTP/0.9, ...).
    http1_lenient_heads,
    /// HTTP/1 field lines without a colon or with an empty name, skipped (RFC 9112 §5).
    http1_field_lines_skipped,
    /// HTTP/1 responses whose status code is not 3 digits (RFC 9112 §4): reported without one.
    http1_unusable_status_codes,
    /// HTTP/0.9 simple requests (answered by a bare body until the close).
    http1_simple_requests,
    /// HTTP/1 heads neither parser could read on a connection already seen to be HTTP
    /// (skipped; the stream resyncs at the next message start).
    http1_invalid_heads,
    /// HTTP/1 request heads neither parser could read where a request had to start, reported
    /// with the server's answer and marked `invalid_head` (RFC 9112 §3).
    http1_invalid_requests,
    /// HTTP/1 messages whose framing fields break RFC 9112 §6 (Transfer-Encoding not ending in
    /// chunked, Transfer-Encoding with Content-Length, bad Content-Length); marked on the record.
    http1_invalid_framing,
    /// Bytes after a request whose length could not be determined, not read as requests
    /// (RFC 9112 §6.3 rules 4, 5).
    http1_unframed_bytes,
    // --- HTTP/2 and gRPC (issue 15: resets, connection errors, gRPC status) ---
    /// HTTP/2 connections whose decoding stopped at a connection error (RFC 9113 §5.4.1): a field block interrupted by a frame other than its CONTINUATION (§6.10, §4.3).
    h2_connection_error_field_block_interrupted,
    /// HTTP/2 streams the client reset before the server ended them (cancelled, RFC 9113 §8.7); reported with what the server sent anyway.
    h2_streams_cancelled,
    /// HTTP/2 frames the server sent on a stream the client had reset, still decoded (RFC 9113 §5.4.2, §6.4: sent before the server read the reset).
    h2_frames_after_reset,
    /// gRPC calls without `grpc-status` whose status was derived from the HTTP status (gRPC http-grpc-status-mapping).
    grpc_status_derived_from_http_status,
    /// gRPC calls whose `grpc-status` was undecodable (or absent) but whose non-empty `grpc-message` says they failed: UNKNOWN.
    grpc_status_inferred_from_message,
    // --- TCP RST (RFC 9293 §3.10.7.4, RFC 5961 §3.2) ---
    /// RSTs the receiver drops: sequence number outside its window (or, answering a SYN, an ACK of nothing sent); decoding goes on.
    tcp_rst_out_of_window,
    /// RSTs in the window but not at the next sequence number: the receiver sends a challenge ACK and keeps the connection.
    tcp_rst_challenged,
    /// RSTs at the next sequence number: the connection resets unless the peers carry on.
    tcp_resets,
    /// Resets withdrawn: the RST's sender carried on in its sequence space (forged, or dropped before the receiver).
    tcp_rst_peers_continued,
    /// Segments out of sequence after a reset: a new connection on the same 4-tuple, picked up mid-way.
    tcp_rst_new_connections,
    /// SYNs with another ISN on a tuple whose first attempt carried nothing: a new connection attempt (the old one retired).
    tcp_syn_new_attempts,
    // --- W3C Trace Context (§3.2) ---
    /// Requests with more than one `traceparent` field: none is taken (a new trace), marked on the record.
    trace_duplicated_traceparent,
    // Capture formats (issue 15 kind 1).
    /// Frames of a capture link type we do not decode (replay names the type on stderr).
    decode_unsupported_link_type,
    /// NFLOG frames whose attributes walk in neither byte order.
    decode_bad_nflog_tlv,
    /// NFLOG frames without an NFULA_PAYLOAD attribute (logged without the packet).
    decode_nflog_without_payload,
    // --- DNS over HTTP (RFC 8484) and reports at the engine's timeout (issue 15 kinds 3, 8) ---
    /// DNS messages decoded from HTTP/1 or HTTP/2 bodies and GET `dns` parameters (RFC 8484), reported as DNS flows besides the HTTP ones.
    dns_doh_messages,
    /// DoH bodies longer than a DNS message can be (65535 bytes, RFC 1035 §4.2.2): not decoded.
    dns_doh_bodies_too_long,
    /// DoH bodies not kept because the HTTP/2 connection's open streams held `h2_max_stream_state_bytes` already: not decoded.
    dns_doh_bodies_over_memory_cap,
    /// DoH bodies or GET `dns` parameters that are no DNS message (not decoded; the HTTP exchange is reported as usual).
    dns_doh_malformed_messages,
    /// DNS-over-TCP queries still unanswered `dns_timeout_ns` after they were sent, forgotten at the engine's timeout (also in `dns_unanswered`).
    dns_tcp_queries_timed_out,
    /// HTTP/2 streams the client cancelled, reported at the engine's timeout because no later packet of the connection came to end their wait.
    h2_cancelled_streams_reported_at_timeout,
    // --- TCP connection health from packets (issue 17; tcp::health) ---
    /// TCP handshakes seen whole (SYN, SYN/ACK, the ACK of the SYN/ACK).
    tcp_handshakes,
    /// SYNs a client sent again before any SYN/ACK.
    tcp_syn_retransmits,
    /// TCP segments seen again at another capture point (lo's egress and ingress, a forwarded packet's interfaces): one packet, not counted by the health analysis again.
    tcp_second_sightings,
    /// Connections refused: the server answered the SYN with a RST (RFC 9293 §3.10.7.3).
    tcp_connections_refused,
    /// Connections that ended (evicted) with their SYN never answered.
    tcp_syns_unanswered,
    /// RTT samples taken (data to the ACK covering it; Karn's rule, RFC 6298 §3).
    tcp_rtt_samples,
    /// Retransmitted TCP segments by the health analysis (bytes seen or acknowledged before, or a late hole filler).
    tcp_health_retransmissions,
    /// Payload bytes of retransmitted TCP segments.
    tcp_health_retransmitted_bytes,
    /// TCP segments that filled a hole within the reordering window (reordered before the capture; `tcp_out_of_order_segments` counts what reassembly buffered).
    tcp_health_reordered_segments,
    /// Duplicate ACKs (RFC 5681 §2).
    tcp_duplicate_acks,
    /// Zero-window advertisements (RFC 9293 §3.8.6.2).
    tcp_zero_window_advertisements,
    /// TCP keep-alives (RFC 9293 §3.8.4).
    tcp_keepalives,
    // --- TLS (issue 19): plaintext read at the TLS library, and TLS seen on the wire ---
    /// TCP connections whose stream starts with a TLS handshake record (RFC 8446 §5.1).
    tls_flows_on_wire,
    /// TLS connections that ended with no plaintext source (blind spots: library not hooked, statically linked, Go, rustls...).
    tls_flows_without_plaintext,
    /// TCP connections decoded from TLS plaintext instead of their packets.
    tls_plaintext_flows,
    /// Plaintext chunks (one SSL_read/SSL_write each) fed to the decoders.
    tls_plaintext_chunks,
    /// Plaintext bytes a call moved beyond the per-call copy cap (fed to the decoders as gaps).
    tls_plaintext_truncated_bytes,
    /// Plaintext chunks from the other local end of a connection already fed by its first (both ends on this node: the same bytes twice).
    tls_plaintext_other_end,
    /// Plaintext chunks for a connection not in the flow table (no packet of it captured yet, or the table was full).
    tls_plaintext_no_flow,
    /// TLS connections without plaintext whose ends were not handed out to be named (too many between two takes).
    tls_blind_spots_not_named,
    // --- TCP window stalls (issue 17; tcp::health) ---
    /// Data segments that filled the receiver's advertised window (RFC 9293 §3.8.6; Wireshark's `window_full`).
    tcp_window_full_segments,
    /// Zero-window probes (RFC 9293 §3.8.6.1; Linux's look like keep-alives and are counted here, not in `tcp_keepalives`).
    tcp_zero_window_probes,
    // --- More capture formats (issue 15 kind 1): PPP, HDLC, pflog, ipnet, PKTAP, 802.11, MPLS, PPPoE ---
    /// IEEE 802.11 frames that carry no data (management, control, null data): skipped.
    decode_wlan_not_data,
    /// IEEE 802.11 data frames with the Protected Frame bit (encrypted): skipped.
    decode_wlan_protected,
    /// IEEE 802.11 A-MSDU data frames (several packets in one frame): skipped.
    decode_wlan_aggregate,
    /// Frames with an MPLS label stack deeper than we walk (RFC 3032 §2.1): skipped.
    decode_too_many_mpls_labels,
    // --- Tunnels (EngineConfig::decapsulate_tunnels) ---
    /// Frames found inside tunnel packets (GRE, ERSPAN, IP-in-IP, VXLAN, Geneve) and decoded.
    tunnel_inner_frames,
    /// Tunnel packets nested deeper than the engine peels (`MAX_TUNNEL_DEPTH`).
    tunnel_too_deep,
    // --- HTTP/2 stream table ---
    /// HTTP/2 streams reported before their end to make room in a full stream table
    /// (`h2_max_streams`): they had lost bytes to a capture gap, their END_STREAM most likely
    /// with them. Also counted in `h2_streams_unfinished`.
    h2_streams_evicted,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iter_names_every_field() {
        let c = Counters {
            http1_requests: 3,
            ..Default::default()
        };
        let all: Vec<_> = c.iter().collect();
        assert!(all.contains(&("http1_requests", 3)));
        assert_eq!(all[0].0, "frames");
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json.as_object().unwrap().len(), all.len());
    }
}
