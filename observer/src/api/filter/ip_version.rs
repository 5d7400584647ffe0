//! `ip_version`: IPv4 or IPv6.

use super::{any_of, Check, FilterError};
use crate::api::proto::flow::FlowFilter;

/// Compiles `ip_version`.
pub fn compile(filter: &FlowFilter) -> Result<Vec<Check>, FilterError> {
    Ok(any_of(filter.ip_version.clone(), |v, f| {
        f.flow.ip.as_ref().is_some_and(|ip| ip.ip_version == *v)
    }))
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::api::proto::flow::IpVersion;

    #[test]
    fn table() {
        let v4 = http_request();
        let v6 = tcp_syn();
        let cases: &[(&[IpVersion], bool, bool)] = &[
            (&[IpVersion::IPv4], true, false),
            (&[IpVersion::IPv6], false, true),
            (&[IpVersion::IPv4, IpVersion::IPv6], true, true),
        ];
        for (i, (vs, want4, want6)) in cases.iter().enumerate() {
            let f = FlowFilter {
                ip_version: vs.iter().map(|v| *v as i32).collect(),
                ..Default::default()
            };
            assert_eq!(matches(&f, &v4), *want4, "case {i}");
            assert_eq!(matches(&f, &v6), *want6, "case {i}");
        }
    }
}
