//! `verdict`: FORWARDED, DROPPED, ...

use super::{any_of, Check, FilterError};
use crate::api::proto::flow::{FlowFilter, Verdict};

/// Parses a verdict name (case-insensitive).
pub fn parse_verdict(s: &str) -> Result<Verdict, FilterError> {
    Verdict::from_str_name(&s.trim().to_ascii_uppercase())
        .filter(|v| *v != Verdict::Unknown)
        .ok_or_else(|| FilterError::Verdict(s.to_string()))
}

/// Compiles `verdict`.
pub fn compile(filter: &FlowFilter) -> Result<Vec<Check>, FilterError> {
    for v in &filter.verdict {
        Verdict::try_from(*v).map_err(|_| FilterError::Enum {
            field: "verdict",
            value: *v,
        })?;
    }
    Ok(any_of(filter.verdict.clone(), |v, f| f.flow.verdict == *v))
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn table() {
        let req = http_request(); // FORWARDED
        let cases: &[(&[&str], bool)] = &[
            (&["FORWARDED"], true),
            (&["forwarded"], true),
            (&["DROPPED"], false),
            (&["DROPPED", "FORWARDED"], true),
        ];
        for (i, (vs, want)) in cases.iter().enumerate() {
            let f = FlowFilter {
                verdict: vs
                    .iter()
                    .map(|s| parse_verdict(s).unwrap() as i32)
                    .collect(),
                ..Default::default()
            };
            assert_eq!(matches(&f, &req), *want, "case {i}");
        }
        assert!(parse_verdict("maybe").is_err());
        let bad = FlowFilter {
            verdict: vec![99],
            ..Default::default()
        };
        assert!(compile(&bad).is_err());
    }
}
