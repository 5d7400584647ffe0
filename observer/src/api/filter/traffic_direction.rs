//! `traffic_direction`: INGRESS (the peer connected to this host) or EGRESS.

use super::{any_of, Check, FilterError};
use crate::api::proto::flow::{FlowFilter, TrafficDirection};

/// Parses `ingress` / `egress` (case-insensitive).
pub fn parse_direction(s: &str) -> Result<TrafficDirection, FilterError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "ingress" => Ok(TrafficDirection::Ingress),
        "egress" => Ok(TrafficDirection::Egress),
        _ => Err(FilterError::TrafficDirection(s.to_string())),
    }
}

/// Compiles `traffic_direction`.
pub fn compile(filter: &FlowFilter) -> Result<Vec<Check>, FilterError> {
    Ok(any_of(filter.traffic_direction.clone(), |d, f| {
        f.flow.traffic_direction == *d
    }))
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn table() {
        let req = http_request(); // arrived at the server: INGRESS
        let resp = http_response(200); // reply of that connection: still INGRESS
        let syn = tcp_syn(); // we connected out: EGRESS
        let cases: &[(&[&str], bool, bool, bool)] = &[
            (&["ingress"], true, true, false),
            (&["EGRESS"], false, false, true),
            (&["ingress", "egress"], true, true, true),
        ];
        for (i, (dirs, a, b, c)) in cases.iter().enumerate() {
            let f = FlowFilter {
                traffic_direction: dirs
                    .iter()
                    .map(|s| parse_direction(s).unwrap() as i32)
                    .collect(),
                ..Default::default()
            };
            assert_eq!(matches(&f, &req), *a, "case {i}");
            assert_eq!(matches(&f, &resp), *b, "case {i}");
            assert_eq!(matches(&f, &syn), *c, "case {i}");
        }
        assert!(parse_direction("sideways").is_err());
    }
}
