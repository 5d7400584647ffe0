//! TLS plaintext (Engine::handle_plaintext) interleaved with a connection's packets: arbitrary
//! chunks from either local end, either way, with truncation gaps, before and after the FINs,
//! then eviction. No panics, bounded buffering, and the ciphertext never reaches a decoder.
#![no_main]
use flows::engine::{Engine, EngineConfig, L4Records, PlaintextChunk};
use flows::key::Endpoint;
use flows::packet::{CaptureMeta, LinkType};
use flows::record::L7Source;
use flows::synth::TcpConversation;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let client: std::net::SocketAddr = "198.18.0.2:40000".parse().unwrap();
    let server: std::net::SocketAddr = "198.18.0.1:443".parse().unwrap();
    let mut engine = Engine::new(EngineConfig { l4_records: L4Records::Off, ..EngineConfig::default() });
    let mut conv = TcpConversation::new(client, server, 1, 1000, 1_000);
    conv.handshake();
    conv.client_send(&[22, 3, 1, 0, 6, 1, 0, 0, 2, 3, 3], 1400);
    let feed = |engine: &mut Engine, conv: &TcpConversation, from: usize| {
        for f in &conv.frames()[from..] {
            let meta = CaptureMeta { ts_ns: f.ts_ns, ifindex: 1, direction: f.direction, orig_len: f.data.len() as u32, socket_cookie: None };
            let _ = engine.handle_frame(f.ts_ns, LinkType::Ethernet, &f.data, meta);
            while engine.poll_record().is_some() {}
        }
    };
    feed(&mut engine, &conv, 0);
    let ep = |a: std::net::SocketAddr| Endpoint { addr: a.ip(), port: a.port() };
    let mut rest = data;
    let mut ts = 1_000_000;
    let mut closed = false;
    // Each chunk: a control byte (bit 0 sent, bit 1 from the server's end, bit 2 close the
    // connection first, bits 3-7 a truncation gap), a length byte, then that many bytes.
    while let [ctl, len, tail @ ..] = rest {
        let n = (*len as usize).min(tail.len());
        let (bytes, next) = tail.split_at(n);
        rest = next;
        if ctl & 4 != 0 && !closed {
            let from = conv.frames().len();
            conv.close();
            feed(&mut engine, &conv, from);
            closed = true;
        }
        let (local, remote) = if ctl & 2 != 0 { (server, client) } else { (client, server) };
        ts += 1000;
        let chunk = PlaintextChunk {
            ts_ns: ts,
            local: ep(local),
            remote: ep(remote),
            sent: ctl & 1 != 0,
            data: bytes,
            missing: u64::from(ctl >> 3),
            source: L7Source::OpensslUprobe,
            socket_cookie: None,
        };
        engine.handle_plaintext(ts, &chunk);
        while engine.poll_record().is_some() {}
        assert!(engine.buffered_bytes() <= 64 * 1024 * 1024);
    }
    engine.flush(ts + 1);
    while engine.poll_record().is_some() {}
});
