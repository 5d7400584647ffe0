//! The shared field cases (`../shared/fieldcases`, beside the checkout) replayed with the real
//! `flowscope` binary, as CI tests.
//!
//! - `kinds/`: hand-built captures, one per fault kind, with `expected/<name>.json` listing the
//!   exchanges and DNS transactions a correct decoder reports. [`kinds_report_expected`]
//!   replays each with `flowscope replay -o json --l4 off` and compares, as multisets, what it
//!   reports with those lists (the rules of `kinds/README.md`), and requires exit status 0.
//! - `cases/`: captures of real clients and servers; their expectations are predicates (latency,
//!   marks, counters, spans) kept in `cases/check`, which [`field_cases_pass_their_checks`] runs
//!   against this build.
//!
//! The folder is not part of this repository: a missing folder fails the tests (they never
//! pass vacuously).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn fieldcases() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fieldcases");
    assert!(
        dir.join("kinds/expected").is_dir() && dir.join("cases/check").is_file(),
        "field cases not found at {} (CI keeps ../shared beside the checkout)",
        dir.display()
    );
    dir
}

/// One request/response exchange as `kinds/README.md` lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Exchange {
    method: Option<String>,
    path: Option<String>,
    status: Option<i64>,
    grpc_status: Option<i64>,
}

/// One DNS transaction as `kinds/README.md` lists it (answers order-insensitive, lowercase).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Dns {
    query: String,
    qtype: String,
    rcode: Option<i64>,
    answers: Vec<String>,
}

fn answer_key(a: &str) -> String {
    match a.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => a.trim_end_matches('.').to_ascii_lowercase(),
    }
}

impl Dns {
    fn new(query: &str, qtype: String, rcode: Option<i64>, answers: Vec<String>) -> Self {
        let mut answers: Vec<String> = answers.iter().map(|a| answer_key(a)).collect();
        answers.sort();
        Dns {
            query: query.trim_end_matches('.').to_ascii_lowercase(),
            qtype,
            rcode,
            answers,
        }
    }
}

/// `scheme://authority/path` -> `/path`; a bare target stays as it is.
fn path_of(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest))
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c)) =>
        {
            match rest.find('/') {
                Some(i) => rest[i..].to_string(),
                None => "/".to_string(),
            }
        }
        _ => url.to_string(),
    }
}

type End = (Option<String>, Option<i64>);

fn ends(r: &Value) -> (End, End) {
    let l4 = &r["l4"];
    let t = if l4["TCP"].is_object() {
        &l4["TCP"]
    } else {
        &l4["UDP"]
    };
    let s = |v: &Value| v.as_str().map(String::from);
    (
        (s(&r["IP"]["source"]), t["source_port"].as_i64()),
        (s(&r["IP"]["destination"]), t["destination_port"].as_i64()),
    )
}

fn exchange(req: Option<&Value>, resp: Option<&Value>) -> Exchange {
    let get = |k: &str| {
        resp.and_then(|h| h[k].as_str())
            .or_else(|| req.and_then(|h| h[k].as_str()))
            .map(String::from)
    };
    let grpc_status = resp
        .and_then(|h| h["headers"].as_array())
        .into_iter()
        .flatten()
        .find(|kv| {
            kv["key"]
                .as_str()
                .is_some_and(|k| k.eq_ignore_ascii_case("grpc-status"))
        })
        .and_then(|kv| kv["value"].as_str().and_then(|v| v.parse().ok()));
    Exchange {
        method: get("method"),
        path: get("url").map(|u| path_of(&u)),
        status: resp.and_then(|h| h["code"].as_i64()),
        grpc_status,
    }
}

/// Exchanges from the HTTP records: a request and its responses share `extensions.span_id` on
/// one connection; 1xx interim responses (but 101) fold into their exchange.
fn exchanges(recs: &[Value]) -> Vec<Exchange> {
    type Key = (Vec<End>, String);
    let mut reqs: Vec<(Key, &Value)> = Vec::new();
    let mut resps: BTreeMap<Key, Vec<&Value>> = BTreeMap::new();
    for (i, r) in recs.iter().enumerate() {
        let h = &r["l7"]["http"];
        if !h.is_object() {
            continue;
        }
        let (a, b) = ends(r);
        let mut pair = vec![a, b];
        pair.sort();
        let id = r["extensions"]["span_id"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| format!("n{i}"));
        if r["l7"]["type"] == "REQUEST" {
            reqs.push(((pair, id), h));
        } else {
            resps.entry((pair, id)).or_default().push(h);
        }
    }
    let mut out = Vec::new();
    for (key, q) in reqs {
        let rl = resps.remove(&key).unwrap_or_default();
        let is_final = |h: &&&Value| {
            let c = h["code"].as_i64().unwrap_or(0);
            !(100..200).contains(&c) || c == 101
        };
        let r = rl.iter().find(is_final).or(rl.last()).copied();
        out.push(exchange(Some(q), r));
    }
    for (_, rl) in resps {
        out.extend(rl.into_iter().map(|h| exchange(None, Some(h))));
    }
    out
}

/// DNS transactions: a paired response (one with a latency) uses up its query; unanswered
/// queries are listed with no rcode.
fn dns(recs: &[Value]) -> Vec<Dns> {
    struct Raw<'a> {
        resp: bool,
        query: String,
        d: &'a Value,
        paired: bool,
        ends: (End, End),
        used: bool,
    }
    let mut raw: Vec<Raw<'_>> = recs
        .iter()
        .filter(|r| r["l7"]["dns"].is_object())
        .map(|r| Raw {
            resp: r["l7"]["type"] != "REQUEST",
            query: r["l7"]["dns"]["query"]
                .as_str()
                .unwrap_or("")
                .trim_end_matches('.')
                .to_string(),
            d: &r["l7"]["dns"],
            paired: r["l7"].get("latency_ns").is_some(),
            ends: ends(r),
            used: false,
        })
        .collect();
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(String::from))
            .collect()
    };
    let mut out = Vec::new();
    for i in 0..raw.len() {
        if !raw[i].resp {
            continue;
        }
        if raw[i].paired {
            let (query, client) = (raw[i].query.clone(), raw[i].ends.1.clone());
            if let Some(q) = raw[..i]
                .iter_mut()
                .find(|q| !q.resp && !q.used && q.ends.0 == client && q.query == query)
            {
                q.used = true;
            }
        }
        let d = raw[i].d;
        let mut answers = strs(&d["cnames"]);
        answers.extend(strs(&d["ips"]));
        out.push(Dns::new(
            &raw[i].query,
            strs(&d["qtypes"]).join(","),
            Some(d["rcode"].as_i64().unwrap_or(0)),
            answers,
        ));
    }
    for q in raw.iter().filter(|q| !q.resp && !q.used) {
        out.push(Dns::new(
            &q.query,
            strs(&q.d["qtypes"]).join(","),
            None,
            vec![],
        ));
    }
    out
}

fn expected_exchanges(exp: &Value) -> Vec<Exchange> {
    exp["exchanges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| Exchange {
            method: x["method"].as_str().map(String::from),
            path: x["path"].as_str().map(String::from),
            status: x["status"].as_i64(),
            grpc_status: x["grpc_status"].as_i64(),
        })
        .collect()
}

fn expected_dns(exp: &Value) -> Vec<Dns> {
    exp["dns"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let answers = d["answers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str().map(String::from))
                .collect();
            Dns::new(
                d["query"].as_str().unwrap_or(""),
                d["qtype"].as_str().unwrap_or("").to_string(),
                d["rcode"].as_i64(),
                answers,
            )
        })
        .collect()
}

/// What `want` has and `got` lacks, and the other way round (multisets).
fn diff<T: Ord + Clone>(mut want: Vec<T>, mut got: Vec<T>) -> (Vec<T>, Vec<T>) {
    want.sort();
    got.sort();
    let mut missing = Vec::new();
    let mut extra = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < want.len() || j < got.len() {
        match (want.get(i), got.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a < b => {
                missing.push(a.clone());
                i += 1;
            }
            (Some(a), None) => {
                missing.push(a.clone());
                i += 1;
            }
            (_, Some(b)) => {
                extra.push(b.clone());
                j += 1;
            }
            (None, None) => unreachable!(),
        }
    }
    (missing, extra)
}

fn replay_json(file: &Path) -> (i32, Vec<Value>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_flowscope"))
        .args(["replay", "-o", "json", "--l4", "off"])
        .arg(file)
        .output()
        .expect("run flowscope replay");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let recs = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l}: {e}")))
        .collect();
    (
        out.status.code().unwrap_or(-1),
        recs,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn kinds_report_expected() {
    let dir = fieldcases().join("kinds");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read kinds/")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 40,
        "only {} captures in {}",
        files.len(),
        dir.display()
    );
    let mut failures = Vec::new();
    for file in &files {
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        let exp_path = dir.join("expected").join(format!("{name}.json"));
        let exp: Value = serde_json::from_str(
            &std::fs::read_to_string(&exp_path)
                .unwrap_or_else(|e| panic!("{}: {e}", exp_path.display())),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", exp_path.display()));
        let (rc, recs, stderr) = replay_json(file);
        let (mx, ex) = diff(expected_exchanges(&exp), exchanges(&recs));
        let (md, ed) = diff(expected_dns(&exp), dns(&recs));
        if rc != 0 || !mx.is_empty() || !ex.is_empty() || !md.is_empty() || !ed.is_empty() {
            failures.push(format!(
                "{name}: exit {rc}\n  missing {mx:?}\n  extra {ex:?}\n  missing dns {md:?}\n  \
                 extra dns {ed:?}\n  stderr: {}",
                stderr.lines().collect::<Vec<_>>().join(" | ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} kinds differ from expected:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn field_cases_pass_their_checks() {
    let check = fieldcases().join("cases/check");
    let out = Command::new("python3")
        .arg(&check)
        .arg("-v")
        .env("FLOWSCOPE", env!("CARGO_BIN_EXE_flowscope"))
        .output()
        .expect("python3 runs cases/check (./dev.sh installs python3)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cases/check failed (exit {:?}):\n{stdout}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("field cases: ") && !stdout.contains("FAIL"),
        "{stdout}"
    );
}

#[test]
fn path_of_strips_scheme_and_authority() {
    assert_eq!(path_of("http://h/a?b=1"), "/a?b=1");
    assert_eq!(path_of("http://h"), "/");
    assert_eq!(path_of("/x"), "/x");
    assert_eq!(path_of("*"), "*");
}

#[test]
fn diff_is_a_multiset_difference() {
    let (m, e) = diff(vec![1, 1, 2, 3], vec![1, 2, 2, 4]);
    assert_eq!(m, vec![1, 3]);
    assert_eq!(e, vec![2, 4]);
}
