//! `node_name`: node name patterns where `*` matches any run of characters (`k8s*`).

use super::{any_of, regex, Check, FilterError};
use crate::api::proto::flow::FlowFilter;

/// Compiles `node_name`.
pub fn compile(filter: &FlowFilter) -> Result<Vec<Check>, FilterError> {
    let res = filter
        .node_name
        .iter()
        .map(|p| {
            let body = p
                .split('*')
                .map(regex::escape)
                .collect::<Vec<_>>()
                .join(".*");
            regex(&format!("^{body}$"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(any_of(res, |re, f| re.is_match(&f.flow.node_name)))
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn table() {
        let a = http_request(); // node-a
        let b = tcp_syn(); // node-b
        let cases: &[(&[&str], bool, bool)] = &[
            (&["node-a"], true, false),
            (&["node-*"], true, true),
            (&["*b"], false, true),
            (&["node"], false, false),
            (&["node.a"], false, false), // `.` is literal
        ];
        for (i, (pats, want_a, want_b)) in cases.iter().enumerate() {
            let f = FlowFilter {
                node_name: pats.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            };
            assert_eq!(matches(&f, &a), *want_a, "case {i}");
            assert_eq!(matches(&f, &b), *want_b, "case {i}");
        }
    }
}
