//! `uuid`: exact flow ids.

use super::{any_of, Check, FilterError};
use crate::api::proto::flow::FlowFilter;

/// Compiles `uuid`.
pub fn compile(filter: &FlowFilter) -> Result<Vec<Check>, FilterError> {
    Ok(any_of(filter.uuid.clone(), |u, f| f.flow.uuid == *u))
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn table() {
        let mut flow = http_request();
        flow.uuid = "a-b".into();
        let cases: &[(&[&str], bool)] = &[(&["a-b"], true), (&["c"], false), (&["c", "a-b"], true)];
        for (i, (ids, want)) in cases.iter().enumerate() {
            let f = FlowFilter {
                uuid: ids.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            };
            assert_eq!(matches(&f, &flow), *want, "case {i}");
        }
    }
}
