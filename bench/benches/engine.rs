//! Engine throughput: packets/s (decode alone and the whole engine) and HTTP exchanges/s on a
//! large capture generated in memory. Budgets (DESIGN.md): >= 1M packets/s and >= 300k
//! exchanges/s per core.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use flows::engine::{Engine, EngineConfig, L4Records};
use flows::packet::{decode, CaptureMeta, LinkType};
use flows::synth::SynthFrame;

const CONNECTIONS: u16 = 200;
const EXCHANGES: usize = 50;

fn feed(engine: &mut Engine, frames: &[SynthFrame]) -> usize {
    let mut records = 0;
    for f in frames {
        let meta = CaptureMeta {
            ts_ns: f.ts_ns,
            direction: f.direction,
            ..CaptureMeta::default()
        };
        let _ = engine.handle_frame(f.ts_ns, LinkType::Ethernet, &f.data, meta);
        while let Some(r) = engine.poll_record() {
            black_box(&r);
            records += 1;
        }
    }
    engine.flush(u64::MAX / 2);
    while engine.poll_record().is_some() {
        records += 1;
    }
    records
}

fn benches(c: &mut Criterion) {
    let frames = flowscope_bench::http_workload(CONNECTIONS, EXCHANGES, 256);
    let packets = frames.len() as u64;
    let exchanges = flowscope_bench::exchange_count(CONNECTIONS, EXCHANGES);

    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(packets));
    g.bench_function("packets", |b| {
        b.iter(|| {
            for f in &frames {
                black_box(decode(LinkType::Ethernet, &f.data, CaptureMeta::default()).ok());
            }
        })
    });
    g.finish();

    // `l7_no_spans` is what `flowscope replay --quiet` and an agent without a span sink run.
    for (name, mode, spans) in [
        ("l7_only", L4Records::Off, true),
        ("l7_no_spans", L4Records::Off, false),
        ("every_packet", L4Records::EveryPacket, true),
    ] {
        let mut g = c.benchmark_group(format!("engine_{name}"));
        g.sample_size(20);
        g.throughput(Throughput::Elements(packets));
        g.bench_function("packets", |b| {
            b.iter_batched(
                || {
                    Engine::new(EngineConfig {
                        l4_records: mode,
                        spans,
                        ..EngineConfig::default()
                    })
                },
                |mut e| feed(&mut e, &frames),
                BatchSize::LargeInput,
            )
        });
        g.throughput(Throughput::Elements(exchanges));
        g.bench_function("http_exchanges", |b| {
            b.iter_batched(
                || {
                    Engine::new(EngineConfig {
                        l4_records: mode,
                        spans,
                        ..EngineConfig::default()
                    })
                },
                |mut e| feed(&mut e, &frames),
                BatchSize::LargeInput,
            )
        });
        g.finish();
    }
}

criterion_group!(engine, benches);
criterion_main!(engine);
