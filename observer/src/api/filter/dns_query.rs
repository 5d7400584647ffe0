//! `dns_query`: regular expressions searched in the DNS query name.

use super::{any_of, regex, Check, FilterError};
use crate::api::proto::flow::{layer7::Record, FlowFilter};

/// Compiles `dns_query`.
pub fn compile(filter: &FlowFilter) -> Result<Vec<Check>, FilterError> {
    let res = filter
        .dns_query
        .iter()
        .map(|p| regex(p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(any_of(res, |re, f| {
        match f.flow.l7.as_ref().and_then(|l| l.record.as_ref()) {
            Some(Record::Dns(d)) => re.is_match(&d.query),
            _ => false,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::api::proto::flow::{Dns, Layer7};

    #[test]
    fn table() {
        let mut dns = http_request();
        dns.l7 = Some(Layer7 {
            r#type: 1,
            latency_ns: 0,
            record: Some(Record::Dns(Dns {
                query: "api.example.com.".into(),
                ..Default::default()
            })),
        });
        let cases: &[(&[&str], bool)] = &[
            (&["example"], true),
            (&[r"^api\."], true),
            (&["^www"], false),
            (&["^www", r"com\.$"], true),
        ];
        for (i, (qs, want)) in cases.iter().enumerate() {
            let f = FlowFilter {
                dns_query: qs.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            };
            assert_eq!(matches(&f, &dns), *want, "case {i}");
            assert!(!matches(&f, &http_request()), "case {i}");
        }
    }
}
