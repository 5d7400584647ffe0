//! `flowscope replay --workers 2` reports what `--workers 1` reports: every shared field case
//! (`../shared/fieldcases/kinds` and `cases/pcap`) replayed by the real binary both ways must
//! print the same flows and spans (as multisets, generated trace/span ids blanked: each worker
//! draws its own), the same counters, and the per-packet L3/L4 flows in the same (capture)
//! order. The folder is not part of this repository: a missing folder fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn captures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fieldcases");
    let mut all = Vec::new();
    for dir in ["kinds", "cases/pcap"] {
        let dir = root.join(dir);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
            panic!(
                "field cases missing at {} ({e}): CI keeps ../shared beside the checkout",
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
    assert!(all.len() >= 40, "only {} captures found", all.len());
    all
}

fn blank_ids(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, v) in m.iter_mut() {
                if matches!(
                    k.as_str(),
                    "trace_id" | "span_id" | "parent_span_id" | "traceId" | "spanId"
                ) {
                    *v = Value::Null;
                } else {
                    blank_ids(v);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(blank_ids),
        _ => {}
    }
}

/// `(stdout lines with ids blanked, the counter lines of stderr)`.
fn replay(path: &Path, workers: u16, spans: bool) -> (Vec<String>, Vec<String>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowscope"));
    cmd.args(["replay", "-o", "json", "--workers", &workers.to_string()]);
    if spans {
        cmd.arg("--spans");
    }
    let out = cmd.arg(path).output().expect("run flowscope replay");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success() || stderr.contains("nothing could be decoded"),
        "{}: {stderr}",
        path.display()
    );
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).expect("one JSON object per line");
            blank_ids(&mut v);
            v.to_string()
        })
        .collect();
    let counters = stderr
        .lines()
        .skip_while(|l| !l.starts_with("--- counters"))
        .map(str::to_string)
        .collect();
    (lines, counters)
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn two_workers_replay_every_field_case_like_one() {
    let mut compared = 0;
    for path in captures() {
        let name = path.display();
        for spans in [false, true] {
            let (one, one_counters) = replay(&path, 1, spans);
            let (two, two_counters) = replay(&path, 2, spans);
            assert_eq!(one_counters, two_counters, "{name}: counters");
            if !spans {
                // Per-packet records come in capture order whatever the worker.
                let l4 = |v: &[String]| -> Vec<String> {
                    v.iter()
                        .filter(|l| l.contains("\"Type\":\"L3_L4\""))
                        .cloned()
                        .collect()
                };
                assert_eq!(l4(&two), l4(&one), "{name}: L3/L4 flows out of order");
            }
            compared += one.len();
            assert_eq!(sorted(two), sorted(one), "{name} (spans: {spans})");
        }
    }
    assert!(compared > 500, "only {compared} records compared");
}
