//! `http_path`: regular expressions searched in the URL's path (unanchored, like Hubble;
//! anchor with `^...$`).

use super::{any_of, regex, Check, FilterError};
use crate::api::{
    convert::url_path,
    proto::flow::{layer7::Record, FlowFilter},
};

/// Compiles `http_path`.
pub fn compile(filter: &FlowFilter) -> Result<Vec<Check>, FilterError> {
    let res = filter
        .http_path
        .iter()
        .map(|p| regex(p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(any_of(res, |re, f| {
        match f.flow.l7.as_ref().and_then(|l| l.record.as_ref()) {
            Some(Record::Http(h)) => re.is_match(url_path(&h.url)),
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
        let req = http_request(); // http://198.18.0.1/page
        let cases: &[(&[&str], bool)] = &[
            (&["/page"], true),
            (&["^/page$"], true),
            (&["^/pa"], true),
            (&["^/other"], false),
            (&["198"], false), // the host is not part of the path
            (&["x", "ge$"], true),
        ];
        for (i, (paths, want)) in cases.iter().enumerate() {
            let f = FlowFilter {
                http_path: paths.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            };
            assert_eq!(matches(&f, &req), *want, "case {i}");
        }
        let bad = FlowFilter {
            http_path: vec!["[".into()],
            ..Default::default()
        };
        assert!(compile(&bad).is_err());
    }
}
