//! Helpers shared by the integration tests.
#![allow(dead_code)]

use flows::engine::{Engine, EngineConfig};
use flows::packet::{CaptureMeta, LinkType};
use flows::record::{L7Record, L7Type, Record, Span};
use flows::synth::SynthFrame;

/// Feeds frames to the engine (with timeouts as time passes), flushes, returns every record.
pub fn run(engine: &mut Engine, frames: &[SynthFrame]) -> Vec<Record> {
    let mut out = Vec::new();
    let mut last = 0;
    for f in frames {
        let meta = CaptureMeta {
            ts_ns: f.ts_ns,
            ifindex: 2,
            direction: f.direction,
            orig_len: f.data.len() as u32,
            socket_cookie: None,
        };
        let _ = engine.handle_frame(f.ts_ns, LinkType::Ethernet, &f.data, meta);
        engine.handle_timeout(f.ts_ns);
        while let Some(r) = engine.poll_record() {
            out.push(r);
        }
        last = f.ts_ns;
    }
    engine.flush(last + 1);
    while let Some(r) = engine.poll_record() {
        out.push(r);
    }
    out
}

/// An engine with default config but no per-packet records.
pub fn l7_engine() -> Engine {
    Engine::new(EngineConfig {
        l4_records: flows::engine::L4Records::Off,
        ..EngineConfig::default()
    })
}

pub fn spans(records: &[Record]) -> Vec<&Span> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Span(s) => Some(&**s),
            _ => None,
        })
        .collect()
}

/// `(type, method, url, code)` of every HTTP L7 flow.
pub fn http_flows(records: &[Record]) -> Vec<(L7Type, String, String, Option<u16>)> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Flow(f) => match &f.l7 {
                Some(l7) => match &l7.record {
                    L7Record::Http(h) => {
                        Some((l7.r#type, h.method.to_string(), h.url.clone(), h.code))
                    }
                    _ => None,
                },
                None => None,
            },
            _ => None,
        })
        .collect()
}

/// Replays a pcap from `tests/data` through a default engine (seed 1, no L3/L4 records).
pub fn replay_pcap(name: &str) -> (Vec<Record>, flows::counters::Counters) {
    replay_pcap_with(
        name,
        EngineConfig {
            l4_records: flows::engine::L4Records::Off,
            id_seed: 1,
            ..EngineConfig::default()
        },
    )
}

/// Replays a pcap from `tests/data` through an engine with `config`.
pub fn replay_pcap_with(
    name: &str,
    config: EngineConfig,
) -> (Vec<Record>, flows::counters::Counters) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let file =
        std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut reader = pcap_file::pcap::PcapReader::new(file).expect("a pcap file");
    let link = LinkType::from_pcap_linktype(u32::from(reader.header().datalink))
        .expect("supported link type");
    let mut e = Engine::new(config);
    let mut out = Vec::new();
    let mut last = 0;
    while let Some(pkt) = reader.next_packet() {
        let pkt = pkt.expect("valid pcap record");
        let ts = pkt.timestamp.as_nanos() as u64;
        let meta = CaptureMeta {
            ts_ns: ts,
            orig_len: pkt.orig_len,
            ..Default::default()
        };
        e.handle_frame(ts, link, &pkt.data, meta)
            .expect("every recorded frame decodes");
        e.handle_timeout(ts);
        while let Some(r) = e.poll_record() {
            out.push(r);
        }
        last = ts;
    }
    e.flush(last);
    while let Some(r) = e.poll_record() {
        out.push(r);
    }
    (out, e.counters().clone())
}
