//! `source_label`/`destination_label`: Kubernetes label selectors over an end's Cilium labels
//! (`reserved:host`, `k8s:io.kubernetes.pod.namespace=shop`), as Hubble matches them
//! (cilium pkg/hubble/filters/labels.go): a selector key may name the label's source
//! (`reserved:host`, `k8s:app`) or not (`app`: any source). Requirements are joined by `,`
//! (all must hold): `key`, `!key`, `key=value`, `key==value`, `key!=value`,
//! `key in (a,b)`, `key notin (a,b)` (k8s.io/apimachinery labels.Parse).

use super::{any_of, Check, FilterError, FlowRef};
use crate::api::proto::flow::{Endpoint, FlowFilter};

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Requirement {
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// `(source, key, value)` of a Cilium label `source:key=value` (value may be empty).
fn split_label(label: &str) -> (&str, &str, &str) {
    let (kv_source, value) = label.split_once('=').unwrap_or((label, ""));
    match kv_source.split_once(':') {
        Some((source, key)) => (source, key, value),
        None => ("", kv_source, value),
    }
}

/// The values an end's labels give a selector key (`source:key` or a bare key).
fn values_of<'a>(labels: &'a [String], key: &str) -> Vec<&'a str> {
    let (want_source, want_key) = match key.split_once(':') {
        Some((s, k)) => (Some(s), k),
        None => (None, key),
    };
    labels
        .iter()
        .map(|l| split_label(l))
        .filter(|(s, k, _)| *k == want_key && want_source.is_none_or(|w| w == *s || w == "any"))
        .map(|(_, _, v)| v)
        .collect()
}

impl Requirement {
    fn matches(&self, labels: &[String]) -> bool {
        match self {
            Requirement::Exists(k) => !values_of(labels, k).is_empty(),
            Requirement::NotExists(k) => values_of(labels, k).is_empty(),
            Requirement::In(k, vs) => values_of(labels, k)
                .iter()
                .any(|v| vs.iter().any(|w| w == v)),
            Requirement::NotIn(k, vs) => !values_of(labels, k)
                .iter()
                .any(|v| vs.iter().any(|w| w == v)),
        }
    }
}

/// Splits at commas outside parentheses.
fn split_top(selector: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&selector[start..]);
    out
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:".contains(&b))
}

fn parse_set(rest: &str) -> Option<Vec<String>> {
    let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(inner.split(',').map(|v| v.trim().to_string()).collect())
}

/// Parses a selector into requirements that must all hold.
pub(crate) fn parse_selector(selector: &str) -> Result<Vec<Requirement>, FilterError> {
    let bad = || FilterError::Label(selector.to_string());
    let mut reqs = Vec::new();
    for term in split_top(selector) {
        let t = term.trim();
        let req = if let Some(k) = t.strip_prefix('!') {
            Requirement::NotExists(k.trim().to_string())
        } else if let Some((k, v)) = t.split_once("!=") {
            Requirement::NotIn(k.trim().to_string(), vec![v.trim().to_string()])
        } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
            Requirement::In(k.trim().to_string(), vec![v.trim().to_string()])
        } else if let Some((k, rest)) = t.split_once(" notin ") {
            Requirement::NotIn(k.trim().to_string(), parse_set(rest).ok_or_else(bad)?)
        } else if let Some((k, rest)) = t.split_once(" in ") {
            Requirement::In(k.trim().to_string(), parse_set(rest).ok_or_else(bad)?)
        } else {
            Requirement::Exists(t.to_string())
        };
        let key = match &req {
            Requirement::Exists(k)
            | Requirement::NotExists(k)
            | Requirement::In(k, _)
            | Requirement::NotIn(k, _) => k,
        };
        let values: &[String] = match &req {
            Requirement::In(_, vs) | Requirement::NotIn(_, vs) => vs,
            _ => &[],
        };
        // Label values: alphanumerics, `-`, `_`, `.` (Kubernetes object metadata rules).
        let valid_value = |v: &String| {
            v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        if !valid_key(key) || !values.iter().all(valid_value) {
            return Err(bad());
        }
        reqs.push(req);
    }
    Ok(reqs)
}

fn label_check(
    selectors: &[String],
    end: for<'a> fn(&FlowRef<'a>) -> Option<&'a Endpoint>,
) -> Result<Vec<Check>, FilterError> {
    let parsed = selectors
        .iter()
        .map(|s| parse_selector(s))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(any_of(parsed, move |reqs, f| {
        end(f).is_some_and(|e| reqs.iter().all(|r| r.matches(&e.labels)))
    }))
}

/// Compiles `source_label` and `destination_label`.
pub fn compile(filter: &FlowFilter) -> Result<Vec<Check>, FilterError> {
    let mut checks = label_check(&filter.source_label, |f| f.flow.source.as_ref())?;
    checks.extend(label_check(&filter.destination_label, |f| {
        f.flow.destination.as_ref()
    })?);
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn table() {
        let mut f = http_request();
        f.source = Some(Endpoint {
            identity: 3,
            labels: vec![
                "k8s:io.kubernetes.pod.namespace=shop".into(),
                "reserved:unmanaged".into(),
            ],
            ..Default::default()
        });
        f.destination = Some(Endpoint {
            identity: 2,
            labels: vec!["reserved:world".into()],
            ..Default::default()
        });
        let plain = http_request();
        let src = |s: &str| FlowFilter {
            source_label: vec![s.into()],
            ..Default::default()
        };
        let dst = |s: &str| FlowFilter {
            destination_label: vec![s.into()],
            ..Default::default()
        };
        let cases = [
            (src("reserved:unmanaged"), true),
            (src("unmanaged"), true),
            (src("any:unmanaged"), true),
            (src("k8s:unmanaged"), false),
            (src("reserved:host"), false),
            (src("io.kubernetes.pod.namespace=shop"), true),
            (src("k8s:io.kubernetes.pod.namespace==shop"), true),
            (src("io.kubernetes.pod.namespace!=shop"), false),
            (src("io.kubernetes.pod.namespace in (a, shop)"), true),
            (src("io.kubernetes.pod.namespace notin (a,shop)"), false),
            (src("io.kubernetes.pod.namespace=shop,!reserved:host"), true),
            (src("io.kubernetes.pod.namespace=shop,reserved:host"), false),
            (dst("reserved:world"), true),
            (dst("!reserved:world"), false),
        ];
        for (i, (filter, want)) in cases.iter().enumerate() {
            assert_eq!(matches(filter, &f), *want, "case {i}");
            assert!(!matches(filter, &plain), "case {i}: no labels, no match");
        }
    }

    #[test]
    fn invalid_selectors_are_refused() {
        for s in ["", "a in b", "=x", "a b=c", "a=b=c", "a in (b c)"] {
            assert!(parse_selector(s).is_err(), "{s:?}");
        }
    }
}
