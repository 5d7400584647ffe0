//! `trace_id`: the W3C trace id of the flow (case-insensitive hex).

use super::{any_of, Check, FilterError};
use crate::api::proto::flow::FlowFilter;

/// Compiles `trace_id`.
pub fn compile(filter: &FlowFilter) -> Result<Vec<Check>, FilterError> {
    let ids: Vec<String> = filter
        .trace_id
        .iter()
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    Ok(any_of(ids, |id, f| {
        f.flow
            .trace_context
            .as_ref()
            .and_then(|t| t.parent.as_ref())
            .is_some_and(|p| p.trace_id.eq_ignore_ascii_case(id))
    }))
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn table() {
        let req = http_request(); // 4bf92f3577b34da6a3ce929d0e0e4736
        let syn = tcp_syn(); // no trace
        let cases: &[(&[&str], bool)] = &[
            (&["4bf92f3577b34da6a3ce929d0e0e4736"], true),
            (&["4BF92F3577B34DA6A3CE929D0E0E4736"], true),
            (&["00000000000000000000000000000001"], false),
            (&["x", "4bf92f3577b34da6a3ce929d0e0e4736"], true),
        ];
        for (i, (ids, want)) in cases.iter().enumerate() {
            let f = FlowFilter {
                trace_id: ids.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            };
            assert_eq!(matches(&f, &req), *want, "case {i}");
            assert!(!matches(&f, &syn), "case {i}");
        }
    }
}
