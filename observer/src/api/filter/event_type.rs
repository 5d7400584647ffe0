//! `event_type`: Cilium monitor message type (4 trace, 1 drop, 129 L7) and optional sub-type.

use super::{any_of, Check, FilterError};
use crate::api::proto::flow::{EventTypeFilter, FlowFilter};

/// Cilium's monitor message types by `hubble observe --type` name.
const TYPES: &[(&str, i32)] = &[
    ("drop", 1),
    ("debug", 2),
    ("capture", 3),
    ("trace", 4),
    ("policy-verdict", 5),
    ("l7", 129),
    ("agent", 130),
];

/// Cilium's trace sub-types (observation points), as hubble prints them.
pub const TRACE_SUB_TYPES: &[(&str, i32)] = &[
    ("to-endpoint", 0),
    ("to-proxy", 1),
    ("to-host", 2),
    ("to-stack", 3),
    ("to-overlay", 4),
    ("from-endpoint", 5),
    ("from-proxy", 6),
    ("from-host", 7),
    ("from-stack", 8),
    ("from-overlay", 9),
    ("from-network", 10),
    ("to-network", 11),
];

/// Parses `trace`, `l7`, `drop`, `trace:to-endpoint`, or numbers like `4` / `4:5`.
pub fn parse_event_type(s: &str) -> Result<EventTypeFilter, FilterError> {
    let err = || FilterError::EventType(s.to_string());
    let lower = s.trim().to_ascii_lowercase();
    let (ty, sub) = match lower.split_once(':') {
        Some((t, st)) => (t, Some(st)),
        None => (lower.as_str(), None),
    };
    let r#type = TYPES
        .iter()
        .find(|(n, _)| *n == ty)
        .map(|(_, v)| *v)
        .or_else(|| ty.parse().ok())
        .ok_or_else(err)?;
    let sub_type = match sub {
        None => None,
        Some(st) => Some(
            TRACE_SUB_TYPES
                .iter()
                .find(|(n, _)| *n == st && r#type == 4)
                .map(|(_, v)| *v)
                .or_else(|| st.parse().ok())
                .ok_or_else(err)?,
        ),
    };
    Ok(EventTypeFilter {
        r#type,
        match_sub_type: sub_type.is_some(),
        sub_type: sub_type.unwrap_or(0),
    })
}

/// Compiles `event_type`.
pub fn compile(filter: &FlowFilter) -> Result<Vec<Check>, FilterError> {
    Ok(any_of(filter.event_type.clone(), |want, f| {
        f.flow.event_type.as_ref().is_some_and(|e| {
            e.r#type == want.r#type && (!want.match_sub_type || e.sub_type == want.sub_type)
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn table() {
        let req = http_request(); // 129
        let syn = tcp_syn(); // 4, from-endpoint
        let cases: &[(&[&str], bool, bool)] = &[
            (&["l7"], true, false),
            (&["trace"], false, true),
            (&["trace:from-endpoint"], false, true),
            (&["trace:to-endpoint"], false, false),
            (&["4:5"], false, true),
            (&["drop"], false, false),
            (&["drop", "129"], true, false),
        ];
        for (i, (types, want_req, want_syn)) in cases.iter().enumerate() {
            let f = FlowFilter {
                event_type: types.iter().map(|s| parse_event_type(s).unwrap()).collect(),
                ..Default::default()
            };
            assert_eq!(matches(&f, &req), *want_req, "case {i}");
            assert_eq!(matches(&f, &syn), *want_syn, "case {i}");
        }
        assert!(parse_event_type("nope").is_err());
        assert!(parse_event_type("trace:sideways").is_err());
    }
}
