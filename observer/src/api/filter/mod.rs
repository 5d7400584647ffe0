//! Hubble's flow filters, compiled once per request into a [`FlowPredicate`].
//!
//! Semantics are Hubble's: within one `FlowFilter` every set field must match (AND), within a
//! field any value may match (OR); a flow passes a list of filters when it matches any of them
//! (OR); a request keeps `whitelist AND NOT blacklist` (an empty whitelist keeps everything).
//! Each dimension is one module that turns its fields of a `FlowFilter` into checks; values
//! that can't be valid (a bad CIDR, regex or status spec) are rejected up front, so a server
//! answers INVALID_ARGUMENT before streaming anything.

use super::proto::{
    flow::{Flow, FlowFilter},
    flowscope::FlowExtension,
};

pub mod dns_query;
pub mod event_type;
pub mod grpc;
pub mod http_method;
pub mod http_path;
pub mod http_status;
pub mod identity;
pub mod ip;
pub mod ip_version;
pub mod kubernetes;
pub mod label;
pub mod node_name;
pub mod port;
pub mod process;
pub mod protocol;
pub mod reply;
pub mod tcp_flags;
pub mod tcp_health;
pub mod trace_id;
pub mod traffic_direction;
pub mod uuid;
pub mod verdict;

/// A flow as filters see it: the wire message and its decoded flowscope extension.
#[derive(Debug, Clone, Copy)]
pub struct FlowRef<'a> {
    /// The flow.
    pub flow: &'a Flow,
    /// Its flowscope extension (process, gRPC), when it has one.
    pub ext: Option<&'a FlowExtension>,
}

impl<'a> FlowRef<'a> {
    /// A view of `flow` and `ext`.
    pub fn new(flow: &'a Flow, ext: Option<&'a FlowExtension>) -> Self {
        Self { flow, ext }
    }
}

/// One compiled condition on a flow.
pub type Check = Box<dyn Fn(&FlowRef<'_>) -> bool + Send + Sync>;

/// A filter value that can never be valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// Not an IP address or CIDR.
    #[error("invalid IP or CIDR {0:?} (expected e.g. 10.0.0.1 or 10.0.0.0/8)")]
    Ip(String),
    /// Not a port number.
    #[error("invalid port {0:?} (expected 0-65535)")]
    Port(String),
    /// Unknown protocol name.
    #[error(
        "unknown protocol {0:?} (expected tcp, udp, icmp, icmpv4, icmpv6, sctp, http, dns or grpc)"
    )]
    Protocol(String),
    /// Not a status code or prefix.
    #[error("invalid HTTP status {0:?} (expected a code like 404 or a prefix like 4+ or 40+)")]
    HttpStatus(String),
    /// A regular expression that does not compile.
    #[error("invalid regular expression {pattern:?}: {reason}")]
    Regex {
        /// The pattern.
        pattern: String,
        /// What the regex compiler said.
        reason: String,
    },
    /// Unknown TCP flag name.
    #[error("unknown TCP flag {0:?} (expected SYN, FIN, RST, PSH, ACK, URG, ECE, CWR or NS)")]
    TcpFlag(String),
    /// Unknown verdict name.
    #[error("unknown verdict {0:?} (expected FORWARDED, DROPPED, ERROR, AUDIT, REDIRECTED, TRACED or TRANSLATED)")]
    Verdict(String),
    /// Unknown event type name.
    #[error("unknown event type {0:?} (expected trace, drop, l7, or trace:to-endpoint / trace:from-endpoint)")]
    EventType(String),
    /// Unknown traffic direction.
    #[error("unknown traffic direction {0:?} (expected ingress or egress)")]
    TrafficDirection(String),
    /// A pod filter that names neither a namespace nor a pod.
    #[error("invalid pod filter {0:?} (expected [namespace/][pod-name-prefix])")]
    Pod(String),
    /// A label selector that does not parse.
    #[error(
        "invalid label selector {0:?} (expected e.g. reserved:host, k8s:app=x, app in (a,b), !key)"
    )]
    Label(String),
    /// An FQDN pattern with characters a name cannot have.
    #[error("invalid FQDN filter {0:?} (expected letters, digits, '-', '_', '.' and '*')")]
    Fqdn(String),
    /// A value out of range for an enum field.
    #[error("invalid {field} value {value}")]
    Enum {
        /// Field name.
        field: &'static str,
        /// The value.
        value: i32,
    },
}

/// A request's compiled whitelist and blacklist.
#[derive(Default)]
pub struct FlowPredicate {
    whitelist: Vec<Vec<Check>>,
    blacklist: Vec<Vec<Check>>,
}

impl std::fmt::Debug for FlowPredicate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowPredicate")
            .field("whitelist", &self.whitelist.len())
            .field("blacklist", &self.blacklist.len())
            .finish()
    }
}

impl FlowPredicate {
    /// True when the flow matches a whitelist filter (or there is none) and no blacklist filter.
    pub fn matches(&self, flow: &FlowRef<'_>) -> bool {
        let all = |checks: &Vec<Check>| checks.iter().all(|c| c(flow));
        (self.whitelist.is_empty() || self.whitelist.iter().any(all))
            && !self.blacklist.iter().any(all)
    }

    /// [`FlowPredicate::matches`] for a flow whose extension is still packed.
    pub fn matches_flow(&self, flow: &Flow) -> bool {
        let ext = FlowExtension::from_flow(flow);
        self.matches(&FlowRef::new(flow, ext.as_ref()))
    }
}

type Dimension = fn(&FlowFilter) -> Result<Vec<Check>, FilterError>;

/// Every dimension, in the order checks run (cheap ones first).
const DIMENSIONS: &[Dimension] = &[
    verdict::compile,
    event_type::compile,
    ip_version::compile,
    traffic_direction::compile,
    reply::compile,
    protocol::compile,
    port::compile,
    tcp_flags::compile,
    ip::compile,
    http_status::compile,
    http_method::compile,
    http_path::compile,
    dns_query::compile,
    trace_id::compile,
    uuid::compile,
    node_name::compile,
    kubernetes::compile,
    identity::compile,
    label::compile,
    process::compile,
    grpc::compile,
    tcp_health::compile,
];

/// Compiles one FlowFilter into the checks that must all hold.
pub fn compile_filter(filter: &FlowFilter) -> Result<Vec<Check>, FilterError> {
    let mut checks = Vec::new();
    for dim in DIMENSIONS {
        checks.extend(dim(filter)?);
    }
    Ok(checks)
}

/// Compiles a request's filters; fails on the first invalid value.
pub fn compile(
    whitelist: &[FlowFilter],
    blacklist: &[FlowFilter],
) -> Result<FlowPredicate, FilterError> {
    Ok(FlowPredicate {
        whitelist: whitelist
            .iter()
            .map(compile_filter)
            .collect::<Result<_, _>>()?,
        blacklist: blacklist
            .iter()
            .map(compile_filter)
            .collect::<Result<_, _>>()?,
    })
}

/// A check that holds when `pred` holds for any of `values` (a field's OR).
pub(crate) fn any_of<T: Send + Sync + 'static>(
    values: Vec<T>,
    pred: impl Fn(&T, &FlowRef<'_>) -> bool + Send + Sync + 'static,
) -> Vec<Check> {
    if values.is_empty() {
        return Vec::new();
    }
    vec![Box::new(move |f: &FlowRef<'_>| {
        values.iter().any(|v| pred(v, f))
    })]
}

/// Compiles a regular expression, mapping the error.
pub(crate) fn regex(pattern: &str) -> Result<regex::Regex, FilterError> {
    regex::Regex::new(pattern).map_err(|e| FilterError::Regex {
        pattern: pattern.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
pub(crate) mod testing {
    //! Flows and a one-filter matcher for the dimension tests.

    use super::*;
    use crate::api::convert::{flow_to_proto, tests as conv};

    /// The L7 HTTP request from the converter tests (198.18.0.2:51234 -> 198.18.0.1:80, GET
    /// /page, pid 456 nginx, trace 4bf9...).
    pub fn http_request() -> Flow {
        flow_to_proto(&conv::http_request(), "node-a")
    }

    /// The same exchange's response, 200, is_reply.
    pub fn http_response(code: u16) -> Flow {
        let mut f = conv::http_request();
        std::mem::swap(&mut f.ip.source, &mut f.ip.destination);
        f.l4 = flows::record::Layer4::Tcp {
            source_port: 80,
            destination_port: 51234,
            flags: Default::default(),
        };
        f.traffic_direction = flows::packet::Direction::Egress;
        f.is_reply = Some(true);
        let l7 = f.l7.as_mut().unwrap();
        l7.r#type = flows::record::L7Type::Response;
        if let flows::record::L7Record::Http(h) = &mut l7.record {
            h.code = Some(code);
        }
        flow_to_proto(&f, "node-a")
    }

    /// An IPv6 TCP SYN 2001:db8::2:40000 -> [2001:db8::1]:443, egress, no process.
    pub fn tcp_syn() -> Flow {
        flow_to_proto(&conv::tcp_syn(), "node-b")
    }

    /// Whether `flow` passes a whitelist of just `filter`.
    pub fn matches(filter: &FlowFilter, flow: &Flow) -> bool {
        compile(std::slice::from_ref(filter), &[])
            .unwrap()
            .matches_flow(flow)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    fn f(src: &str, port: &str) -> FlowFilter {
        FlowFilter {
            source_ip: vec![src.into()],
            destination_port: vec![port.into()],
            ..Default::default()
        }
    }

    #[test]
    fn hubble_combination_rules() {
        let req = http_request(); // 198.18.0.2 -> :80
        let syn = tcp_syn(); // 2001:db8::2 -> :443
        let table: &[(&[FlowFilter], &[FlowFilter], bool, bool)] = &[
            // (whitelist, blacklist, matches req, matches syn)
            (&[], &[], true, true),
            (&[FlowFilter::default()], &[], true, true),
            // fields AND
            (&[f("198.18.0.2", "80")], &[], true, false),
            (&[f("198.18.0.2", "443")], &[], false, false),
            // filters OR
            (
                &[f("198.18.0.2", "80"), f("2001:db8::2", "443")],
                &[],
                true,
                true,
            ),
            // whitelist AND NOT blacklist
            (&[], &[f("198.18.0.2", "80")], false, true),
            (
                &[f("198.18.0.0/16", "80"), f("2001:db8::/32", "443")],
                &[f("2001:db8::2", "443")],
                true,
                false,
            ),
        ];
        for (i, (wl, bl, want_req, want_syn)) in table.iter().enumerate() {
            let p = compile(wl, bl).unwrap();
            assert_eq!(p.matches_flow(&req), *want_req, "case {i} request");
            assert_eq!(p.matches_flow(&syn), *want_syn, "case {i} syn");
        }
    }

    #[test]
    fn values_within_a_field_or() {
        let filter = FlowFilter {
            destination_port: vec!["443".into(), "80".into()],
            ..Default::default()
        };
        assert!(matches(&filter, &http_request()));
        assert!(matches(&filter, &tcp_syn()));
    }

    #[test]
    fn invalid_values_fail_compilation() {
        let bad = FlowFilter {
            http_path: vec!["(".into()],
            ..Default::default()
        };
        assert!(matches!(
            compile(&[], &[bad]),
            Err(FilterError::Regex { .. })
        ));
    }
}
