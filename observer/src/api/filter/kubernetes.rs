//! Pod, label, service and FQDN filters. flowscope flows carry no Kubernetes metadata, so
//! (like a Hubble node whose flows have none) a non-empty list matches no flow.

use super::{Check, FilterError};
use crate::api::proto::flow::FlowFilter;

/// Compiles the pod/label/service/FQDN fields.
pub fn compile(filter: &FlowFilter) -> Result<Vec<Check>, FilterError> {
    let any_set = [
        &filter.source_pod,
        &filter.destination_pod,
        &filter.source_label,
        &filter.destination_label,
        &filter.source_service,
        &filter.destination_service,
        &filter.source_fqdn,
        &filter.destination_fqdn,
    ]
    .iter()
    .any(|v| !v.is_empty());
    Ok(if any_set {
        vec![Box::new(|_: &super::FlowRef<'_>| false)]
    } else {
        Vec::new()
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn table() {
        let req = http_request();
        let cases: &[(FlowFilter, bool)] = &[
            (FlowFilter::default(), true),
            (
                FlowFilter {
                    source_pod: vec!["default/x".into()],
                    ..Default::default()
                },
                false,
            ),
            (
                FlowFilter {
                    destination_label: vec!["app=x".into()],
                    ..Default::default()
                },
                false,
            ),
        ];
        for (i, (f, want)) in cases.iter().enumerate() {
            assert_eq!(matches(f, &req), *want, "case {i}");
        }
    }
}
