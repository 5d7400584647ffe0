//! `http_method`: the request method, case-insensitive.

use super::{any_of, Check, FilterError};
use crate::api::proto::flow::{layer7::Record, FlowFilter};

/// Compiles `http_method`.
pub fn compile(filter: &FlowFilter) -> Result<Vec<Check>, FilterError> {
    Ok(any_of(filter.http_method.clone(), |m, f| {
        match f.flow.l7.as_ref().and_then(|l| l.record.as_ref()) {
            Some(Record::Http(h)) => h.method.eq_ignore_ascii_case(m),
            _ => false,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn table() {
        let get = http_request();
        let syn = tcp_syn();
        let cases: &[(&[&str], bool)] = &[
            (&["GET"], true),
            (&["get"], true),
            (&["POST"], false),
            (&["POST", "GET"], true),
        ];
        for (i, (methods, want)) in cases.iter().enumerate() {
            let f = FlowFilter {
                http_method: methods.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            };
            assert_eq!(matches(&f, &get), *want, "case {i}");
            assert!(!matches(&f, &syn), "case {i}: non-HTTP never matches");
        }
    }
}
