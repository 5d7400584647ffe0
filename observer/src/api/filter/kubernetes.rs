//! Pod, FQDN and service filters (labels: [`super::label`]).
//!
//! Pods and FQDNs as Hubble filters them (cilium pkg/hubble/filters/k8s.go, fqdn.go):
//! `source_pod`/`destination_pod` are `[namespace/][pod-name-prefix]`, the namespace
//! `default` when not given (pkg/hubble/k8s `ParseNamespaceName`), a flow matching when its
//! end is in that namespace and its pod name starts with the prefix (`kube-system/` is the
//! whole namespace: what `hubble observe --namespace` sends); `source_fqdn`/
//! `destination_fqdn` are names where `*` stands for any run of name characters, matched
//! whole and case-insensitively against the end's `*_names`. Services: flowscope flows carry
//! no Kubernetes services, so (like a Hubble node whose flows have none) a non-empty list
//! matches no flow.

use super::{any_of, regex, Check, FilterError, FlowRef};
use crate::api::proto::flow::{Endpoint, FlowFilter};

/// `(namespace, pod-name prefix)` of a pod filter.
pub(crate) fn parse_pod(spec: &str) -> Result<(String, String), FilterError> {
    match spec.split('/').collect::<Vec<_>>().as_slice() {
        [pod] if !pod.is_empty() => Ok(("default".into(), pod.to_string())),
        [ns, pod] if !(ns.is_empty() && pod.is_empty()) => Ok((ns.to_string(), pod.to_string())),
        _ => Err(FilterError::Pod(spec.to_string())),
    }
}

fn pod_check(
    specs: &[String],
    end: for<'a> fn(&FlowRef<'a>) -> Option<&'a Endpoint>,
) -> Result<Vec<Check>, FilterError> {
    let pods = specs
        .iter()
        .map(|s| parse_pod(s))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(any_of(pods, move |(ns, prefix), f| {
        end(f).is_some_and(|e| {
            (!e.namespace.is_empty() || !e.pod_name.is_empty())
                && e.namespace == *ns
                && e.pod_name.starts_with(prefix.as_str())
        })
    }))
}

/// A `*` pattern as an anchored, case-insensitive regex over name characters.
pub(crate) fn fqdn_regex(pattern: &str) -> Result<regex::Regex, FilterError> {
    let p = pattern.trim().trim_end_matches('.').to_ascii_lowercase();
    let ok = !p.is_empty()
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.*".contains(&b));
    if !ok {
        return Err(FilterError::Fqdn(pattern.to_string()));
    }
    let body = p
        .split('*')
        .map(regex::escape)
        .collect::<Vec<_>>()
        .join("[-a-zA-Z0-9_.]*");
    regex(&format!("(?i)^{body}$"))
}

fn fqdn_check(
    patterns: &[String],
    names: for<'a> fn(&FlowRef<'a>) -> &'a [String],
) -> Result<Vec<Check>, FilterError> {
    let res = patterns
        .iter()
        .map(|p| fqdn_regex(p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(any_of(res, move |re, f| {
        names(f).iter().any(|n| re.is_match(n))
    }))
}

/// Compiles the pod/FQDN/service fields.
pub fn compile(filter: &FlowFilter) -> Result<Vec<Check>, FilterError> {
    let mut checks = pod_check(&filter.source_pod, |f| f.flow.source.as_ref())?;
    checks.extend(pod_check(&filter.destination_pod, |f| {
        f.flow.destination.as_ref()
    })?);
    checks.extend(fqdn_check(&filter.source_fqdn, |f| &f.flow.source_names)?);
    checks.extend(fqdn_check(&filter.destination_fqdn, |f| {
        &f.flow.destination_names
    })?);
    let unsupported = !filter.source_service.is_empty() || !filter.destination_service.is_empty();
    if unsupported {
        checks.push(Box::new(|_: &FlowRef<'_>| false));
    }
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    /// The HTTP request from pod shop/cart-5d78c9869d-x7k2q to api.example.org.
    fn from_pod() -> crate::api::proto::flow::Flow {
        let mut f = http_request();
        f.source = Some(Endpoint {
            identity: 3,
            namespace: "shop".into(),
            pod_name: "cart-5d78c9869d-x7k2q".into(),
            ..Default::default()
        });
        f.destination = Some(Endpoint {
            identity: 2,
            ..Default::default()
        });
        f.destination_names = vec!["api.example.org".into()];
        f
    }

    #[test]
    fn table() {
        let pod = from_pod();
        let plain = http_request();
        let filter = |src_pod: &[&str], dst_fqdn: &[&str]| FlowFilter {
            source_pod: src_pod.iter().map(|s| s.to_string()).collect(),
            destination_fqdn: dst_fqdn.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let cases: &[(FlowFilter, bool, bool)] = &[
            (FlowFilter::default(), true, true),
            (filter(&["shop/cart"], &[]), true, false),
            (filter(&["shop/"], &[]), true, false),
            (filter(&["shop/cart-5d78c9869d-x7k2q"], &[]), true, false),
            (filter(&["cart"], &[]), false, false), // namespace `default`
            (filter(&["other/cart"], &[]), false, false),
            (filter(&["shop/web"], &[]), false, false),
            (filter(&[], &["api.example.org"]), true, false),
            (filter(&[], &["API.example.org."]), true, false),
            (filter(&[], &["*.example.org"]), true, false),
            (filter(&[], &["*"]), true, false),
            (filter(&[], &["example.org"]), false, false),
            (filter(&[], &["api.example.or"]), false, false),
            (filter(&["shop/"], &["*.org"]), true, false),
            (
                FlowFilter {
                    destination_pod: vec!["shop/".into()],
                    ..Default::default()
                },
                false,
                false,
            ),
            (
                FlowFilter {
                    destination_service: vec!["shop/cart".into()],
                    ..Default::default()
                },
                false,
                false,
            ),
        ];
        for (i, (f, want_pod, want_plain)) in cases.iter().enumerate() {
            assert_eq!(matches(f, &pod), *want_pod, "case {i}");
            assert_eq!(matches(f, &plain), *want_plain, "case {i}");
        }
    }

    #[test]
    fn invalid_values_are_refused() {
        for f in [
            FlowFilter {
                source_pod: vec!["/".into()],
                ..Default::default()
            },
            FlowFilter {
                source_pod: vec!["a/b/c".into()],
                ..Default::default()
            },
            FlowFilter {
                destination_fqdn: vec!["api.example.org/x".into()],
                ..Default::default()
            },
        ] {
            assert!(compile(&f).is_err(), "{f:?}");
        }
    }
}
