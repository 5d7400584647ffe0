//! `reply`: whether the flow is in the reply direction; flows where that is unknown match
//! neither value.

use super::{any_of, Check, FilterError};
use crate::api::proto::flow::FlowFilter;

/// Compiles `reply`.
pub fn compile(filter: &FlowFilter) -> Result<Vec<Check>, FilterError> {
    Ok(any_of(filter.reply.clone(), |want, f| {
        f.flow.is_reply == Some(*want)
    }))
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn table() {
        let req = http_request();
        let resp = http_response(200);
        let mut unknown = http_request();
        unknown.is_reply = None;
        let cases: &[(&[bool], bool, bool, bool)] = &[
            (&[false], true, false, false),
            (&[true], false, true, false),
            (&[true, false], true, true, false),
        ];
        for (i, (vals, a, b, c)) in cases.iter().enumerate() {
            let f = FlowFilter {
                reply: vals.to_vec(),
                ..Default::default()
            };
            assert_eq!(matches(&f, &req), *a, "case {i}");
            assert_eq!(matches(&f, &resp), *b, "case {i}");
            assert_eq!(matches(&f, &unknown), *c, "case {i}");
        }
    }
}
