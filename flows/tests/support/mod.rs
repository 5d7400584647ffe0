//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use flows::capture_file::CaptureParser;
use flows::counters::Counters;
use flows::engine::{Engine, EngineConfig};
use flows::packet::{CaptureMeta, LinkType};
use flows::record::{L7Record, L7Type, Record, Span};
use flows::synth::SynthFrame;

/// `frames`, each cut to its first `n` payload bytes after 54 bytes of Ethernet, IPv4 and TCP
/// headers, as the TC program's snap does.
pub fn snapped(frames: &[SynthFrame], n: usize) -> Vec<SynthFrame> {
    frames
        .iter()
        .map(|f| SynthFrame {
            data: f.data[..f.data.len().min(14 + 20 + 20 + n)].to_vec(),
            ..f.clone()
        })
        .collect()
}

/// Feeds frames to the engine (with timeouts as time passes), flushes, returns every record.
pub fn run(engine: &mut Engine, frames: &[SynthFrame]) -> Vec<Record> {
    let mut out = Vec::new();
    let mut last = 0;
    for f in frames {
        let _ = engine.handle_frame(f.ts_ns, LinkType::Ethernet, &f.data, f.capture_meta());
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
                        Some((l7.r#type, h.method.to_string(), h.url.to_string(), h.code))
                    }
                    _ => None,
                },
                None => None,
            },
            _ => None,
        })
        .collect()
}

/// The config the golden tests replay with, as `flowscope replay --l4 off` does: no L3/L4
/// records, id seed 1 (so span and trace ids are stable).
pub fn golden_config() -> EngineConfig {
    EngineConfig {
        l4_records: flows::engine::L4Records::Off,
        id_seed: 1,
        ..EngineConfig::default()
    }
}

/// Replays a pcap from `tests/data` through a default engine (seed 1, no L3/L4 records).
pub fn replay_pcap(name: &str) -> (Vec<Record>, Counters) {
    replay_pcap_with(name, golden_config())
}

/// Replays a pcap from `tests/data` through an engine with `config`.
pub fn replay_pcap_with(name: &str, config: EngineConfig) -> (Vec<Record>, Counters) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    replay_file(&path, config)
}

/// `../shared/fieldcases/<dir>/<name>` beside the checkout (e.g. `("kinds", "F5-....pcap")`
/// or `("cases/pcap", "09-....pcap")`). Panics when the file is missing, so a golden test
/// never passes by not reading its capture (CI has the folder).
pub fn fieldcase_path(dir: &str, name: &str) -> PathBuf {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fieldcases"
    ))
    .join(dir)
    .join(name);
    assert!(
        path.is_file(),
        "field case {} is missing: these tests need ../shared/fieldcases beside the checkout",
        path.display()
    );
    path
}

/// Replays the field case `<dir>/<name>` (see [`fieldcase_path`]) with [`golden_config`];
/// every frame must decode.
pub fn replay_fieldcase(dir: &str, name: &str) -> (Vec<Record>, Counters) {
    replay_file(&fieldcase_path(dir, name), golden_config())
}

/// Replays a pcap or pcapng file (read by `flows::capture_file`, as `flowscope replay` does)
/// through an engine with `config`; returns every record and the counters. Panics when the
/// file cannot be read or a frame does not decode.
pub fn replay_file(path: &Path, config: EngineConfig) -> (Vec<Record>, Counters) {
    replay_bytes(path, config, true)
}

/// Like [`replay_file`], but a frame the engine refuses is only counted (as `flowscope replay`
/// does), for captures that carry such frames on purpose.
pub fn replay_file_lenient(path: &Path, config: EngineConfig) -> (Vec<Record>, Counters) {
    replay_bytes(path, config, false)
}

fn replay_bytes(
    path: &Path,
    config: EngineConfig,
    every_frame_decodes: bool,
) -> (Vec<Record>, Counters) {
    let name = path.display();
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {name}: {e}"));
    let mut e = Engine::new(config);
    let (mut out, mut last) = (Vec::new(), 0);
    let mut frames = CaptureParser::frames(&bytes);
    for f in frames.by_ref() {
        let f = f.unwrap_or_else(|err| panic!("{name}: {err}"));
        let meta = CaptureMeta {
            ts_ns: f.ts_ns,
            ifindex: f.interface,
            direction: f.direction,
            orig_len: f.orig_len,
            socket_cookie: None,
        };
        let decoded = e.handle_frame(f.ts_ns, f.link, f.data, meta);
        if every_frame_decodes {
            decoded.unwrap_or_else(|err| panic!("{name}: a frame at {} ns: {err}", f.ts_ns));
        }
        e.handle_timeout(f.ts_ns);
        out.extend(std::iter::from_fn(|| e.poll_record()));
        last = f.ts_ns;
    }
    assert!(frames.rest().is_empty(), "{name}: incomplete last record");
    e.flush(last);
    out.extend(std::iter::from_fn(|| e.poll_record()));
    (out, e.counters().clone())
}

/// A pcap file (microsecond timestamps, little-endian) of `frames` (capture time in ns, bytes)
/// with link type `linktype`, for golden tests that build their captures byte by byte.
pub fn pcap(linktype: u32, frames: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(0xa1b2_c3d4u32.to_le_bytes());
    out.extend(2u16.to_le_bytes());
    out.extend(4u16.to_le_bytes());
    out.extend([0; 8]);
    out.extend(65535u32.to_le_bytes());
    out.extend(linktype.to_le_bytes());
    for (ts_ns, data) in frames {
        out.extend(((ts_ns / 1_000_000_000) as u32).to_le_bytes());
        out.extend((((ts_ns / 1000) % 1_000_000) as u32).to_le_bytes());
        out.extend((data.len() as u32).to_le_bytes());
        out.extend((data.len() as u32).to_le_bytes());
        out.extend(data);
    }
    out
}

/// A record as JSON with the generated ids (trace, span, parent span) blanked: engines that
/// draw ids from different streams (one per worker) give the same records otherwise.
pub fn masked(r: &Record) -> serde_json::Value {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m.iter_mut() {
                    if matches!(k.as_str(), "trace_id" | "span_id" | "parent_span_id") {
                        *v = serde_json::Value::Null;
                    } else {
                        walk(v);
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(r).expect("records serialize");
    walk(&mut v);
    v
}
