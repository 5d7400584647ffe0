//! `http_status_code`: an exact code (`404`) or a prefix (`4+`, `40+`). Only responses have a
//! code, so requests never match.

use super::{any_of, Check, FilterError};
use crate::api::proto::flow::{layer7::Record, FlowFilter};

/// A parsed status spec: codes in `low..=high`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusMatch {
    low: u32,
    high: u32,
}

impl StatusMatch {
    /// Parses `200`, `5+` or `50+` (codes 100-599, like Hubble).
    pub fn parse(s: &str) -> Result<Self, FilterError> {
        let err = || FilterError::HttpStatus(s.to_string());
        let t = s.trim();
        let (digits, prefix) = match t.strip_suffix('+') {
            Some(d) => (d, true),
            None => (t, false),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let n: u32 = digits.parse().map_err(|_| err())?;
        let (low, high) = match (prefix, digits.len()) {
            (false, 3) => (n, n),
            (true, 1) => (n * 100, n * 100 + 99),
            (true, 2) => (n * 10, n * 10 + 9),
            _ => return Err(err()),
        };
        if !(100..=599).contains(&low) {
            return Err(err());
        }
        Ok(Self { low, high })
    }

    /// Whether `code` is matched.
    pub fn contains(&self, code: u32) -> bool {
        (self.low..=self.high).contains(&code)
    }
}

/// Compiles `http_status_code`.
pub fn compile(filter: &FlowFilter) -> Result<Vec<Check>, FilterError> {
    let parsed = filter
        .http_status_code
        .iter()
        .map(|s| StatusMatch::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(any_of(parsed, |m, f| {
        match f.flow.l7.as_ref().and_then(|l| l.record.as_ref()) {
            Some(Record::Http(h)) => h.code != 0 && m.contains(h.code),
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
        let ok = http_response(200);
        let not_found = http_response(404);
        let req = http_request();
        let cases: &[(&[&str], bool, bool, bool)] = &[
            // (specs, 200, 404, request)
            (&["200"], true, false, false),
            (&["2+"], true, false, false),
            (&["4+"], false, true, false),
            (&["40+"], false, true, false),
            (&["41+"], false, false, false),
            (&["5+", "404"], false, true, false),
        ];
        for (i, (specs, want_ok, want_nf, want_req)) in cases.iter().enumerate() {
            let f = FlowFilter {
                http_status_code: specs.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            };
            assert_eq!(matches(&f, &ok), *want_ok, "case {i}");
            assert_eq!(matches(&f, &not_found), *want_nf, "case {i}");
            assert_eq!(matches(&f, &req), *want_req, "case {i}");
        }
        for bad in ["20", "2000", "6+", "x+", "+", "", "0+", "099"] {
            assert!(StatusMatch::parse(bad).is_err(), "{bad}");
        }
    }
}
