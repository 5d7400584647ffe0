//! A sharded run ([`flows::shard`]: dispatcher, one engine per worker, merger) reports what one
//! engine reports: every field-case capture (`shared/fieldcases/kinds` and `cases/pcap`)
//! replayed through 1 engine and through 2 and 3 workers, with several hash seeds so that the
//! flows land on different workers, must give the same records (as a multiset; generated
//! trace/span ids aside, each worker has its own id stream), the same counters, and the same
//! order for every record a packet produced (only a broadcast timeout scan or the final flush
//! may interleave the workers' evictions differently).

mod support;

use std::path::{Path, PathBuf};

use flows::capture_file::CaptureParser;
use flows::counters::Counters;
use flows::engine::{Engine, EngineConfig, L4Records};
use flows::packet::CaptureMeta;
use flows::record::{L7Record, Record};
use flows::shard::{worker_config, Dispatcher, Merger, Route};
use serde_json::Value;
use support::masked;

/// Records as JSON with generated ids blanked, and whether each came from a timeout scan or
/// the flush (rather than from a packet).
type Out = Vec<(Value, bool)>;

fn config() -> EngineConfig {
    EngineConfig {
        l4_records: L4Records::EveryPacket,
        id_seed: 1,
        spans: true,
        span_both_ends: true,
        ..EngineConfig::default()
    }
}

fn frames(path: &Path) -> Vec<(u64, flows::packet::LinkType, Vec<u8>, CaptureMeta)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    CaptureParser::frames(&bytes)
        .map_while(Result::ok)
        .map(|f| {
            let meta = CaptureMeta {
                ts_ns: f.ts_ns,
                ifindex: f.interface,
                direction: f.direction,
                orig_len: f.orig_len,
                socket_cookie: None,
            };
            (f.ts_ns, f.link, f.data.to_vec(), meta)
        })
        .collect()
}

/// One engine, driven as `flowscope replay` drives it.
fn single(path: &Path) -> (Out, Counters) {
    let mut e = Engine::new(config());
    let (mut out, mut last) = (Vec::new(), 0);
    for (ts, link, data, meta) in frames(path) {
        let _ = e.handle_frame(ts, link, &data, meta);
        out.extend(std::iter::from_fn(|| e.poll_record()).map(|r| (masked(&r), false)));
        e.handle_timeout(ts);
        out.extend(std::iter::from_fn(|| e.poll_record()).map(|r| (masked(&r), true)));
        last = ts;
    }
    e.flush(last);
    out.extend(std::iter::from_fn(|| e.poll_record()).map(|r| (masked(&r), true)));
    (out, e.counters().clone())
}

/// The same capture through `n` workers, in one thread (the binary runs the same steps on
/// worker threads). Also returns how many records each worker produced.
fn sharded(path: &Path, n: usize, seed: u64) -> (Out, Counters, Vec<usize>) {
    let base = config();
    let mut d = Dispatcher::new(n, &base, seed);
    let mut engines: Vec<Engine> = (0..n)
        .map(|i| Engine::new(worker_config(&base, n, i)))
        .collect();
    let mut merger = Merger::new(n);
    let mut per_worker = vec![0; n];
    let (mut seq, mut last) = (0u64, 0);
    let mut out = Vec::new();
    let mut collect = |merger: &mut Merger<(Value, bool)>,
                       engines: &mut [Engine],
                       w: usize,
                       seq: u64,
                       scan: bool| {
        while let Some(r) = engines[w].poll_record() {
            per_worker[w] += 1;
            merger.push(w, seq, (masked(&r), scan));
        }
    };
    for (ts, link, data, meta) in frames(path) {
        seq += 1;
        match d.route(ts, link, &data, meta) {
            Route::Frame(w) => {
                let _ = engines[w].handle_frame(ts, link, &data, meta);
                collect(&mut merger, &mut engines, w, seq, false);
            }
            Route::Datagram {
                worker,
                datagram,
                meta,
            } => {
                engines[worker].handle_reassembled(ts, &datagram, meta);
                collect(&mut merger, &mut engines, worker, seq, false);
            }
            Route::Held => {}
        }
        if d.due(ts) {
            seq += 1;
            for w in 0..n {
                engines[w].handle_timeout(ts);
                collect(&mut merger, &mut engines, w, seq, true);
            }
        }
        for w in 0..n {
            merger.advance(w, seq);
        }
        out.extend(std::iter::from_fn(|| merger.pop()));
        last = ts;
    }
    seq += 1;
    d.flush();
    for w in 0..n {
        engines[w].flush(last);
        collect(&mut merger, &mut engines, w, seq, true);
        merger.advance(w, seq);
    }
    out.extend(std::iter::from_fn(|| merger.pop()));
    assert!(merger.is_empty());
    let mut counters = d.counters().clone();
    for e in &engines {
        counters.add(e.counters());
    }
    (out, counters, per_worker)
}

fn sorted(out: &Out) -> Vec<String> {
    let mut v: Vec<String> = out.iter().map(|(r, _)| r.to_string()).collect();
    v.sort();
    v
}

fn from_packets(out: &Out) -> Vec<&Value> {
    out.iter()
        .filter(|(_, scan)| !scan)
        .map(|(r, _)| r)
        .collect()
}

fn captures() -> Vec<PathBuf> {
    let root = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fieldcases"
    ));
    let mut all = Vec::new();
    for dir in ["kinds", "cases/pcap"] {
        let dir = root.join(dir);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
            panic!(
                "field cases missing at {} ({e}): these tests need ../shared/fieldcases beside the checkout",
                dir.display()
            )
        });
        for e in entries {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
                all.push(p);
            }
        }
    }
    all.sort();
    assert!(
        all.len() >= 40,
        "only {} field-case captures found",
        all.len()
    );
    all
}

#[test]
fn every_field_case_decodes_the_same_on_2_and_3_workers() {
    for path in captures() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let (one, one_counters) = single(&path);
        assert!(!one.is_empty(), "{name}: no records at all");
        for (n, seed) in [(2, 0), (2, 1), (2, 2), (3, 7)] {
            let (many, counters, _) = sharded(&path, n, seed);
            assert_eq!(
                sorted(&many),
                sorted(&one),
                "{name}: {n} workers (seed {seed}) report other records"
            );
            assert_eq!(
                from_packets(&many),
                from_packets(&one),
                "{name}: {n} workers (seed {seed}): records of packets out of capture order"
            );
            assert_eq!(
                counters, one_counters,
                "{name}: {n} workers (seed {seed}): counters"
            );
        }
    }
}

/// The F4 captures hold DNS answers in IPv4 and IPv6 fragments (see `ip_fragments.rs`): the
/// dispatcher reassembles them and the datagram goes to the worker owning the query's flow,
/// whichever worker that is, so each answer still pairs with its query.
#[test]
fn fragmented_answers_reach_the_worker_of_their_query() {
    for name in [
        "F4-dns-udp-ipv4-fragments.pcap",
        "F4-dns-udp-ipv6-fragments.pcap",
    ] {
        let path = support::fieldcase_path("kinds", name);
        let (one, one_counters) = single(&path);
        let answers = |out: &Out| {
            out.iter()
                .filter(|(r, _)| r.to_string().contains("\"dns\""))
                .count()
        };
        assert!(answers(&one) >= 2, "{name}: DNS records expected");
        assert!(one_counters.ip_frag_reassembled >= 1, "{name}");
        let mut workers_used = std::collections::BTreeSet::new();
        for seed in 0..8 {
            let (many, counters, per_worker) = sharded(&path, 2, seed);
            assert_eq!(sorted(&many), sorted(&one), "{name}: seed {seed}");
            assert_eq!(counters.dns_unanswered, 0, "{name}: seed {seed}");
            assert_eq!(counters, one_counters, "{name}: seed {seed}");
            workers_used.extend(
                per_worker
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| **n > 0)
                    .map(|(w, _)| w),
            );
        }
        // Over the seeds the flows landed on both workers, not always on worker 0.
        assert_eq!(workers_used.len(), 2, "{name}");
    }
}

/// A sanity check of the comparison itself: DNS answers do show up as DNS records.
#[test]
fn dns_records_serialize_with_their_kind() {
    let path = support::fieldcase_path("kinds", "F3-dns-tcp-single.pcap");
    let (records, _) = support::replay_file(&path, config());
    assert!(records.iter().any(|r| matches!(
        r,
        Record::Flow(f) if f.l7.as_ref().is_some_and(|l| matches!(l.record, L7Record::Dns(_)))
    )));
    assert!(records
        .iter()
        .any(|r| masked(r).to_string().contains("\"dns\"")));
}
