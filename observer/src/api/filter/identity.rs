//! `source_identity`/`destination_identity` (numeric security identities: what
//! `hubble observe --from-identity host` sends, 1) and `source_workload`/
//! `destination_workload` (a workload matches when its name and kind match, an empty one
//! matching any, as in Hubble's workload filter).

use super::{any_of, Check, FilterError, FlowRef};
use crate::api::proto::flow::{Endpoint, FlowFilter, Workload};

type EndOf = for<'a> fn(&FlowRef<'a>) -> Option<&'a Endpoint>;

fn source<'a>(f: &FlowRef<'a>) -> Option<&'a Endpoint> {
    f.flow.source.as_ref()
}

fn destination<'a>(f: &FlowRef<'a>) -> Option<&'a Endpoint> {
    f.flow.destination.as_ref()
}

fn identities(ids: &[u32], end: EndOf) -> Vec<Check> {
    any_of(ids.to_vec(), move |id, f| {
        end(f).is_some_and(|e| e.identity == *id)
    })
}

fn workloads(wanted: &[Workload], end: EndOf) -> Vec<Check> {
    any_of(wanted.to_vec(), move |w, f| {
        end(f).is_some_and(|e| {
            e.workloads.iter().any(|ew| {
                (w.name.is_empty() || w.name == ew.name) && (w.kind.is_empty() || w.kind == ew.kind)
            })
        })
    })
}

/// Compiles the identity and workload fields.
pub fn compile(filter: &FlowFilter) -> Result<Vec<Check>, FilterError> {
    let mut checks = identities(&filter.source_identity, source);
    checks.extend(identities(&filter.destination_identity, destination));
    checks.extend(workloads(&filter.source_workload, source));
    checks.extend(workloads(&filter.destination_workload, destination));
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
            workloads: vec![Workload {
                name: "cart".into(),
                kind: "Deployment".into(),
            }],
            ..Default::default()
        });
        f.destination = Some(Endpoint {
            identity: 2,
            ..Default::default()
        });
        let plain = http_request();
        let w = |name: &str, kind: &str| Workload {
            name: name.into(),
            kind: kind.into(),
        };
        let cases: Vec<(FlowFilter, bool)> = vec![
            (FlowFilter::default(), true),
            (
                FlowFilter {
                    source_identity: vec![3],
                    ..Default::default()
                },
                true,
            ),
            (
                FlowFilter {
                    source_identity: vec![1, 3],
                    ..Default::default()
                },
                true,
            ),
            (
                FlowFilter {
                    source_identity: vec![1],
                    ..Default::default()
                },
                false,
            ),
            (
                FlowFilter {
                    destination_identity: vec![2],
                    ..Default::default()
                },
                true,
            ),
            (
                FlowFilter {
                    source_workload: vec![w("cart", "")],
                    ..Default::default()
                },
                true,
            ),
            (
                FlowFilter {
                    source_workload: vec![w("", "Deployment")],
                    ..Default::default()
                },
                true,
            ),
            (
                FlowFilter {
                    source_workload: vec![w("cart", "StatefulSet")],
                    ..Default::default()
                },
                false,
            ),
            (
                FlowFilter {
                    destination_workload: vec![w("cart", "")],
                    ..Default::default()
                },
                false,
            ),
        ];
        for (i, (filter, want)) in cases.iter().enumerate() {
            assert_eq!(matches(filter, &f), *want, "case {i}");
            // A flow whose ends were never resolved matches only the empty filter.
            assert_eq!(matches(filter, &plain), i == 0, "case {i} (plain)");
        }
    }
}
