//! Instruction-count harness for the agent's whole per-record path on HTTP/1, h2c and gRPC: the real
//! [`Pipeline`] (engine decode and span building, owner lookup, span owners, metrics, the
//! endpoint resolver, the flow store and what it evicts) fed a real capture as the agent is in
//! `bench/ab.sh` (`-o none`, metrics on, both ends local processes known from kernel socket
//! events). Ignored by default: `bench/exchange_cost.sh` runs it in a release build under
//! callgrind, which dumps its counts before [`exchange_cost_measured`] and before the
//! `Pipeline::finish` that follows it, and splits the part between by function (deterministic,
//! unlike CPU time on a shared machine).
//!
//! The capture is `$EXCHANGE_COST_PCAP` (from `bench/record_http1.sh`: nginx on port 80 on the
//! recorded veth). Packets from the server port are
//! egress (with the accepting socket's cookie, as TC egress records carry it), the rest
//! ingress: what the agent on the server's veth sees.
//!
//! `$EXCHANGE_COST_MAX_FLOWS` sets the store's ring size (default Hubble's 4,095): comparing a
//! small ring with the default one shows which steps' cache misses grow with the ring.
//! `$EXCHANGE_COST_PREFETCH` (`prefetch`, the default and the agent's; `touch`; `off`) sets
//! what the store's eviction prefetch does (api/store/prefetch.rs): `touch` loads the lines
//! instead, so that callgrind, which ignores prefetch instructions, counts their misses there.
//! The measured feed's wall-clock time is printed too (for native runs).
//!
//! Exchanges are counted exactly: HTTP/1 requests by their first bytes (`GET `), HTTP/2 and
//! gRPC ones (whose frames a packet may share, or a snapped packet cut) as the final
//! responses (`h2_responses`) the pipeline's engine decoded during the measured feed (its
//! counters read before and after it: two loads, nothing callgrind would notice).

use std::{collections::HashSet, hint::black_box, net::SocketAddr, sync::Arc};

use ebpf_kprobe::{
    owner::{OwnerCache, OwnerCacheOptions},
    wire::{SockEvent, SockEventKind, SocketTuple, Transport, WireProcess},
};
use ebpf_tc::wire::{CaptureSource, L2Kind, PacketHdr, WireDirection, FLAG_COOKIE};
use flows::packet::LinkType;

use super::pipeline::{Output, Pipeline};
use crate::{
    api::{
        store::{PrefetchMode, DEFAULT_MAX_FLOWS, PREFETCH_MODE},
        FlowStore,
    },
    export::{metrics::Metrics, ExportConfig, ExportHandles},
};

/// The server's port in the capture (nginx in `bench/record_http1.sh`).
const SERVER_PORT: u16 = 80;

/// A captured Ethernet frame with what the TC program would have said about it.
struct Captured {
    hdr: PacketHdr,
    data: Vec<u8>,
    /// `(source, destination)` of a TCP/IPv4 frame.
    ends: Option<(SocketAddr, SocketAddr)>,
    /// Whether its TCP payload starts a request (`GET `): counts the exchanges.
    request: bool,
}

/// `(source, destination, TCP payload)` of an Ethernet IPv4 TCP frame.
fn tcp_ends(data: &[u8]) -> Option<(SocketAddr, SocketAddr, &[u8])> {
    let ip = data.get(14..)?;
    if data.get(12..14)? != [0x08, 0x00] || ip.first()? >> 4 != 4 || *ip.get(9)? != 6 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
    let tcp = ip.get(ihl..total)?;
    let src = std::net::Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = std::net::Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let sport = u16::from_be_bytes([*tcp.first()?, *tcp.get(1)?]);
    let dport = u16::from_be_bytes([*tcp.get(2)?, *tcp.get(3)?]);
    let off = usize::from(tcp.get(12)? >> 4) * 4;
    Some((
        SocketAddr::new(src.into(), sport),
        SocketAddr::new(dst.into(), dport),
        tcp.get(off..)?,
    ))
}

/// The capture's frames, as the agent's ring would hand them over.
fn frames() -> Vec<Captured> {
    let path = std::env::var_os("EXCHANGE_COST_PCAP")
        .expect("EXCHANGE_COST_PCAP names an HTTP/1 capture (bench/record_http1.sh)");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path:?}: {e}"));
    let mut out = Vec::new();
    for f in flows::capture_file::CaptureParser::frames(&bytes) {
        let f = f.expect("a readable capture");
        assert_eq!(f.link, LinkType::Ethernet, "an Ethernet capture");
        let tcp = tcp_ends(f.data);
        let egress = tcp.is_some_and(|(s, _, _)| s.port() == SERVER_PORT);
        let cookie = tcp.filter(|_| egress).map(|(_, d, _)| cookie_of(d));
        out.push(Captured {
            hdr: PacketHdr {
                ts_ns: f.ts_ns,
                socket_cookie: cookie.unwrap_or(0),
                ifindex: 2,
                orig_len: f.orig_len,
                cap_len: f.data.len() as u32,
                vlan_tci: 0,
                direction: if egress {
                    WireDirection::Egress
                } else {
                    WireDirection::Ingress
                },
                source: CaptureSource::Tc,
                flags: if cookie.is_some() { FLAG_COOKIE } else { 0 },
                l2: L2Kind::Ethernet,
            },
            data: f.data.to_vec(),
            ends: tcp.map(|(s, d, _)| (s, d)),
            request: tcp.is_some_and(|(_, _, p)| p.starts_with(b"GET ")),
        });
    }
    out
}

/// The accepting socket's cookie of the connection from `client`.
fn cookie_of(client: SocketAddr) -> u64 {
    0x1000_0000 + u64::from(client.port())
}

/// Kernel socket events naming every connection's two ends: nginx accepted (with its
/// socket's cookie), h2load connected.
fn sock_events(frames: &[Captured]) -> Vec<SockEvent> {
    let conns: HashSet<(SocketAddr, SocketAddr)> = frames
        .iter()
        .filter_map(|f| f.ends)
        .map(|(s, d)| {
            if d.port() == SERVER_PORT {
                (s, d)
            } else {
                (d, s)
            }
        })
        .collect();
    let mut conns: Vec<_> = conns.into_iter().collect();
    conns.sort();
    let process = |pid, comm: &str| WireProcess {
        pid,
        tid: pid,
        comm: comm.into(),
        cgroup_id: 0,
    };
    let event = |kind, cookie, local, remote, p| SockEvent {
        kind,
        ts_ns: 1,
        cookie: Some(cookie),
        tuple: Some(SocketTuple {
            proto: Transport::Tcp,
            local,
            remote,
        }),
        remote: Some(remote),
        proto: Some(Transport::Tcp),
        process: Some(p),
        netns: None,
        tcp_states: (0, 0),
    };
    conns
        .into_iter()
        .flat_map(|(client, server)| {
            [
                event(
                    SockEventKind::Accept,
                    cookie_of(client),
                    server,
                    client,
                    process(100, "nginx"),
                ),
                event(
                    SockEventKind::Connect,
                    0x2000_0000 + u64::from(client.port()),
                    client,
                    server,
                    process(200, "h2load"),
                ),
            ]
        })
        .collect()
}

/// Frames per batch between flushes (the agent flushes after each ring read).
const BATCH: usize = 16;

/// Feeds `frames` as the agent's reader does: a batch, then a flush, a tick every 100 ms.
fn feed(p: &mut Pipeline<std::io::Sink>, frames: &[Captured], last_tick: &mut u64) {
    for batch in frames.chunks(BATCH) {
        for f in batch {
            p.on_frame(&f.hdr, black_box(&f.data)).expect("sink");
        }
        let now = batch.last().map_or(0, |f| f.hdr.ts_ns);
        if now >= *last_tick + 100_000_000 {
            *last_tick = now;
            p.tick(now).expect("sink");
        } else {
            p.flush().expect("sink");
        }
    }
}

/// The warm-up (owner caches, label caches, the store's ring filling): not measured. Its
/// body differs from [`exchange_cost_measured`]'s, or the compiler could merge the two.
#[inline(never)]
fn exchange_cost_warm(p: &mut Pipeline<std::io::Sink>, frames: &[Captured], t: &mut u64) {
    black_box(frames.len());
    feed(p, frames, t);
}

/// What callgrind measures (between the dumps before it and before `Pipeline::finish`).
#[inline(never)]
fn exchange_cost_measured(p: &mut Pipeline<std::io::Sink>, frames: &[Captured], t: &mut u64) {
    feed(p, frames, t);
    black_box(t);
}

#[test]
#[ignore = "a benchmark: bench/exchange_cost.sh runs it under callgrind"]
fn exchange_cost() {
    let frames = frames();
    let metrics = Arc::new(Metrics::new(&ExportConfig::default()));
    let max_flows = std::env::var("EXCHANGE_COST_MAX_FLOWS")
        .ok()
        .map_or(DEFAULT_MAX_FLOWS, |v| {
            v.parse().expect("EXCHANGE_COST_MAX_FLOWS is a number")
        });
    let store = Arc::new(FlowStore::new(max_flows, "bench-node"));
    let prefetch = std::env::var("EXCHANGE_COST_PREFETCH").unwrap_or_default();
    let mode = match prefetch.as_str() {
        "" | "prefetch" => PrefetchMode::Prefetch,
        "touch" => PrefetchMode::Touch,
        "off" => PrefetchMode::Off,
        other => panic!("EXCHANGE_COST_PREFETCH is prefetch, touch or off, not {other}"),
    };
    PREFETCH_MODE.store(mode as u8, std::sync::atomic::Ordering::Relaxed);
    let mut owners = OwnerCache::new(OwnerCacheOptions {
        proc_fallback: false,
        ..OwnerCacheOptions::default()
    });
    for ev in sock_events(&frames) {
        owners.apply(&ev);
    }
    let mut p = Pipeline::new(
        std::io::sink(),
        Output::None,
        store.clone(),
        Default::default(),
        owners,
        // The agent's default (control-only L3/L4 records, as in bench/ab.sh), not the engine's
        // (every packet): each data segment would otherwise add an L3/L4 flow to every step.
        crate::config::AgentConfig::default().l4_records.engine(),
        ExportHandles {
            metrics: Some(metrics.clone()),
            ..ExportHandles::default()
        },
        1,
        // No kernel table here; the 1 KiB bodies would give no hint anyway.
        None,
        0,
    );
    // A quarter warms up: more than the store's ring of flows, so every measured flow evicts.
    let warm = frames.len() / 4;
    let mut t = 0;
    exchange_cost_warm(&mut p, &frames[..warm], &mut t);
    let decoded = |p: &Pipeline<_>| {
        let c = p.engine_counters();
        (c.h2_responses, c.grpc_calls)
    };
    let before = decoded(&p);
    let started = std::time::Instant::now();
    exchange_cost_measured(&mut p, &frames[warm..], &mut t);
    let elapsed = started.elapsed();
    let after = decoded(&p);
    let (h2, grpc) = (after.0 - before.0, after.1 - before.1);
    p.finish().expect("sink");
    let http1 = frames[warm..].iter().filter(|f| f.request).count() as u64;
    let exchanges = http1 + h2;
    assert!(store.num_flows() == max_flows, "the ring is full");
    assert!(metrics.encode().contains("flowscope_requests_total"));
    println!(
        "exchange_cost: frames {} exchanges {exchanges} max_flows {max_flows} prefetch {mode:?} \
         http1 {http1} http2 {h2} grpc {grpc} ns_per_exchange {:.0}",
        frames.len() - warm,
        elapsed.as_nanos() as f64 / exchanges as f64
    );
}
