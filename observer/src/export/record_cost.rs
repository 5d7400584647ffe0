//! Instruction-count harness for the agent's work per record after the engine: the span path
//! (`Metrics::observe_span`, all three metric families) and the flow path of the pipeline's
//! `emit_flow` (metrics, endpoint resolution, the flow store). Ignored by default:
//! `bench/record_cost.sh` runs it in a release build under callgrind, which counts only the
//! instructions inside [`record_cost_spans`] and [`record_cost_flows`] (deterministic, unlike
//! CPU time on a shared machine).
//!
//! The records are the engine's own, from a synthetic HTTP/1.1 capture (`flows::synth`) of
//! keep-alive connections, attributed to a local server process as the agent's pipeline does.

use std::{hint::black_box, sync::Arc};

use flows::{
    engine::{Engine, EngineConfig},
    packet::{CaptureMeta, LinkType},
    record::{Flow, ProcessInfo, Record, Span},
    synth::http_connection,
};

use super::{metrics::Metrics, ExportConfig};
use crate::api::store::{EngineFlow, FlowStore, DEFAULT_MAX_FLOWS};

/// Connections and exchanges per connection of the capture (distinct label sets: one per
/// client address and path).
const CONNECTIONS: u16 = 16;
const EXCHANGES: usize = 64;
/// Times the capture's records are fed (the first round fills the label caches; the store's
/// ring fills and evicts from the second).
const ROUNDS: usize = 8;

/// The engine's spans and flows of the capture, owned by a local `nginx` as the agent's
/// pipeline would attribute them.
fn records() -> (Vec<Span>, Vec<Flow>) {
    let mut frames: Vec<_> = (0..CONNECTIONS)
        .flat_map(|i| http_connection(20_000 + i, EXCHANGES, 612, 1_700_000_000_000_000_000))
        .collect();
    frames.sort_by_key(|f| f.ts_ns);
    let mut engine = Engine::new(EngineConfig::default());
    let (mut spans, mut flows) = (Vec::new(), Vec::new());
    let owner = ProcessInfo {
        pid: 4242,
        comm: Some("nginx".into()),
        cgroup_id: Some(1),
        ..Default::default()
    };
    let mut take = |engine: &mut Engine| {
        while let Some(r) = engine.poll_record() {
            match r {
                Record::Span(mut s) => {
                    s.process = Some(owner.clone());
                    spans.push(*s);
                }
                Record::Flow(mut f) => {
                    f.process = Some(owner.clone());
                    flows.push(*f);
                }
            }
        }
    };
    for f in &frames {
        let meta = CaptureMeta {
            ts_ns: f.ts_ns,
            direction: f.direction,
            ..CaptureMeta::default()
        };
        let _ = engine.handle_frame(f.ts_ns, LinkType::Ethernet, &f.data, meta);
        take(&mut engine);
    }
    engine.flush(u64::MAX / 2);
    take(&mut engine);
    (spans, flows)
}

/// What callgrind measures for spans: each span observed in every metric family.
#[inline(never)]
fn record_cost_spans(m: &Metrics, spans: &[Span]) {
    for s in spans {
        m.observe_span(black_box(s));
    }
}

/// What callgrind measures for flows: the pipeline's `emit_flow` after the owner lookup.
#[inline(never)]
fn record_cost_flows(m: &Metrics, store: &FlowStore, flows: Vec<Flow>) {
    for f in flows {
        m.observe_flow(&f);
        let resolver = store.endpoints();
        resolver.observe(&f);
        let endpoints = resolver.resolve(&f, f.peer_process.as_ref());
        black_box(store.push_engine(EngineFlow {
            flow: Box::new(f),
            iface: Some(Arc::from("eth0")),
            endpoints,
        }));
    }
}

#[test]
#[ignore = "a benchmark: bench/record_cost.sh runs it under callgrind"]
fn record_cost() {
    let (spans, flows) = records();
    assert!(!spans.is_empty() && !flows.is_empty());
    let m = Metrics::new(&ExportConfig::default());
    let store = FlowStore::new(DEFAULT_MAX_FLOWS, "bench-node");
    for _ in 0..ROUNDS {
        record_cost_spans(&m, &spans);
        // Cloned outside the measured function: the pipeline moves each flow in.
        record_cost_flows(&m, &store, flows.clone());
    }
    // The text is the same whatever the cost: a sanity check that the work was done.
    assert!(m.encode().contains("flowscope_requests_total"));
    println!(
        "record_cost: spans {} flows {}",
        spans.len() * ROUNDS,
        flows.len() * ROUNDS
    );
}
