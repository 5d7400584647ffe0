//! `hubble observe`'s filter flags turned into a whitelist and a blacklist, honouring order:
//! `--not` negates the next filter flag only.
//!
//! Like hubble, flags build two FlowFilters, "left" and "right": `--ip X` puts X in left's
//! source and right's destination (either direction), `--from-ip` / `--to-ip` and every
//! non-directional flag go into both; when both come out equal only one is sent.

use anyhow::{bail, Result};

use crate::api::{
    filter::{
        event_type::parse_event_type,
        http_status::StatusMatch,
        ip::IpMatch,
        kubernetes::{fqdn_regex, parse_pod},
        label::parse_selector,
        port::parse_port,
        protocol::ProtocolMatch,
        regex,
        tcp_flags::parse_flags,
        traffic_direction::parse_direction,
        verdict::parse_verdict,
    },
    identity::parse_identity,
    proto::{
        flow::{FlowFilter, IpVersion},
        flowscope::FlowFilterExtension,
    },
};

/// Filter flags: (long name, short name, takes a value).
pub(crate) const FLAGS: &[(&str, Option<&str>, bool)] = &[
    ("ip", None, true),
    ("from-ip", None, true),
    ("to-ip", None, true),
    ("port", None, true),
    ("from-port", None, true),
    ("to-port", None, true),
    ("protocol", None, true),
    ("tcp-flags", None, true),
    ("verdict", None, true),
    ("type", Some("-t"), true),
    ("http-status", None, true),
    ("http-method", None, true),
    ("http-path", None, true),
    ("trace-id", None, true),
    ("traffic-direction", None, true),
    ("ipv4", Some("-4"), false),
    ("ipv6", Some("-6"), false),
    ("pid", None, true),
    ("comm", None, true),
    ("grpc-service", None, true),
    ("grpc-method", None, true),
    ("node-name", None, true),
    ("uuid", None, true),
    ("dns-query", None, true),
    ("pod", None, true),
    ("from-pod", None, true),
    ("to-pod", None, true),
    ("namespace", Some("-n"), true),
    ("from-namespace", None, true),
    ("to-namespace", None, true),
    ("label", Some("-l"), true),
    ("from-label", None, true),
    ("to-label", None, true),
    ("identity", None, true),
    ("from-identity", None, true),
    ("to-identity", None, true),
    ("fqdn", None, true),
    ("from-fqdn", None, true),
    ("to-fqdn", None, true),
    ("min-rtt", None, true),
    ("retransmits", None, false),
    ("tcp-reset", None, false),
];

/// One filter flag as given, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterArg {
    /// Long name without dashes.
    pub name: &'static str,
    /// Its value (empty for -4/-6).
    pub value: String,
    /// Preceded by `--not`.
    pub negated: bool,
}

/// Extracts the filter flags from raw arguments, in order, with `--not` applied.
pub fn ordered_filter_args(args: &[String]) -> Result<Vec<FilterArg>> {
    let mut out = Vec::new();
    let mut pending_not = false;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        i += 1;
        if a == "--" {
            break;
        }
        if a == "--not" {
            if pending_not {
                bail!("--not --not: --not negates the next filter flag");
            }
            pending_not = true;
            continue;
        }
        let (name, inline) = match a.strip_prefix("--") {
            Some(long) => match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            },
            None => (a, None),
        };
        let hit = FLAGS.iter().find(|(long, short, _)| {
            (a.starts_with("--") && *long == name) || short.is_some_and(|s| s == a)
        });
        let Some((long, _, takes_value)) = hit else {
            if a.starts_with('-') && pending_not {
                bail!("--not must be followed by a filter flag, not {a}");
            }
            continue;
        };
        let value = if *takes_value {
            match inline {
                Some(v) => v,
                None => {
                    let v = args.get(i).cloned().unwrap_or_default();
                    i += 1;
                    v
                }
            }
        } else {
            String::new()
        };
        out.push(FilterArg {
            name: long,
            value,
            negated: pending_not,
        });
        pending_not = false;
    }
    if pending_not {
        bail!("--not must be followed by a filter flag");
    }
    Ok(out)
}

#[derive(Default)]
struct Pair {
    left: FlowFilter,
    right: FlowFilter,
    used: bool,
}

impl Pair {
    fn both(&mut self, f: impl Fn(&mut FlowFilter)) {
        f(&mut self.left);
        f(&mut self.right);
        self.used = true;
    }

    fn split(&mut self, l: impl Fn(&mut FlowFilter), r: impl Fn(&mut FlowFilter)) {
        l(&mut self.left);
        r(&mut self.right);
        self.used = true;
    }

    fn into_filters(self) -> Vec<FlowFilter> {
        if !self.used {
            Vec::new()
        } else if self.left == self.right {
            vec![self.left]
        } else {
            vec![self.left, self.right]
        }
    }
}

fn ext(f: &mut FlowFilter) -> &mut FlowFilterExtension {
    f.flowscope.get_or_insert_with(Default::default)
}

/// Builds `(whitelist, blacklist)` from filter flags, checking every value.
pub fn build_filters(args: &[FilterArg]) -> Result<(Vec<FlowFilter>, Vec<FlowFilter>)> {
    let mut white = Pair::default();
    let mut black = Pair::default();
    for a in args {
        let pair = if a.negated { &mut black } else { &mut white };
        let v = a.value.clone();
        let flag = a.name;
        match flag {
            "ip" => {
                IpMatch::parse(&v)?;
                pair.split(
                    |f| f.source_ip.push(v.clone()),
                    |f| f.destination_ip.push(v.clone()),
                );
            }
            "from-ip" => {
                IpMatch::parse(&v)?;
                pair.both(|f| f.source_ip.push(v.clone()));
            }
            "to-ip" => {
                IpMatch::parse(&v)?;
                pair.both(|f| f.destination_ip.push(v.clone()));
            }
            "port" => {
                parse_port(&v)?;
                pair.split(
                    |f| f.source_port.push(v.clone()),
                    |f| f.destination_port.push(v.clone()),
                );
            }
            "from-port" => {
                parse_port(&v)?;
                pair.both(|f| f.source_port.push(v.clone()));
            }
            "to-port" => {
                parse_port(&v)?;
                pair.both(|f| f.destination_port.push(v.clone()));
            }
            "protocol" => {
                ProtocolMatch::parse(&v)?;
                pair.both(|f| f.protocol.push(v.clone()));
            }
            "tcp-flags" => {
                let flags = parse_flags(&v)?;
                pair.both(|f| f.tcp_flags.push(flags));
            }
            "verdict" => {
                let verdict = parse_verdict(&v)? as i32;
                pair.both(|f| f.verdict.push(verdict));
            }
            "type" => {
                let t = parse_event_type(&v)?;
                pair.both(|f| f.event_type.push(t));
            }
            "http-status" => {
                StatusMatch::parse(&v)?;
                pair.both(|f| f.http_status_code.push(v.clone()));
            }
            "http-method" => pair.both(|f| f.http_method.push(v.clone())),
            "http-path" => {
                regex(&v)?;
                pair.both(|f| f.http_path.push(v.clone()));
            }
            "trace-id" => pair.both(|f| f.trace_id.push(v.clone())),
            "traffic-direction" => {
                let d = parse_direction(&v)? as i32;
                pair.both(|f| f.traffic_direction.push(d));
            }
            "ipv4" => pair.both(|f| f.ip_version.push(IpVersion::IPv4 as i32)),
            "ipv6" => pair.both(|f| f.ip_version.push(IpVersion::IPv6 as i32)),
            "pid" => {
                let pid: u32 = v
                    .trim()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("invalid --pid {v:?} (expected a process id)"))?;
                pair.both(|f| ext(f).pid.push(pid));
            }
            "comm" => pair.both(|f| ext(f).comm.push(v.clone())),
            "grpc-service" => pair.both(|f| ext(f).grpc_service.push(v.clone())),
            "grpc-method" => pair.both(|f| ext(f).grpc_method.push(v.clone())),
            "node-name" => pair.both(|f| f.node_name.push(v.clone())),
            "uuid" => pair.both(|f| f.uuid.push(v.clone())),
            "dns-query" => {
                regex(&v)?;
                pair.both(|f| f.dns_query.push(v.clone()));
            }
            // Pods as `[namespace/]prefix`, a namespace as `namespace/` (what the hubble CLI
            // sends for --namespace), FQDNs as `*` patterns.
            "pod" | "from-pod" | "to-pod" | "namespace" | "from-namespace" | "to-namespace" => {
                let spec = if flag.ends_with("namespace") {
                    format!("{}/", v.trim_end_matches('/'))
                } else {
                    v.clone()
                };
                parse_pod(&spec)?;
                let (src, dst) = (
                    |f: &mut FlowFilter| f.source_pod.push(spec.clone()),
                    |f: &mut FlowFilter| f.destination_pod.push(spec.clone()),
                );
                match flag {
                    "pod" | "namespace" => pair.split(src, dst),
                    "from-pod" | "from-namespace" => pair.both(src),
                    _ => pair.both(dst),
                }
            }
            "label" | "from-label" | "to-label" => {
                parse_selector(&v)?;
                let (src, dst) = (
                    |f: &mut FlowFilter| f.source_label.push(v.clone()),
                    |f: &mut FlowFilter| f.destination_label.push(v.clone()),
                );
                match flag {
                    "label" => pair.split(src, dst),
                    "from-label" => pair.both(src),
                    _ => pair.both(dst),
                }
            }
            "identity" | "from-identity" | "to-identity" => {
                let id = parse_identity(&v).ok_or_else(|| {
                    anyhow::anyhow!(
                        "invalid --{flag} {v:?} (expected a number or a reserved identity: host, \
                         world, unmanaged, remote-node, ...)"
                    )
                })?;
                let (src, dst) = (
                    |f: &mut FlowFilter| f.source_identity.push(id),
                    |f: &mut FlowFilter| f.destination_identity.push(id),
                );
                match flag {
                    "identity" => pair.split(src, dst),
                    "from-identity" => pair.both(src),
                    _ => pair.both(dst),
                }
            }
            "fqdn" | "from-fqdn" | "to-fqdn" => {
                fqdn_regex(&v)?;
                let (src, dst) = (
                    |f: &mut FlowFilter| f.source_fqdn.push(v.clone()),
                    |f: &mut FlowFilter| f.destination_fqdn.push(v.clone()),
                );
                match flag {
                    "fqdn" => pair.split(src, dst),
                    "from-fqdn" => pair.both(src),
                    _ => pair.both(dst),
                }
            }
            "min-rtt" => {
                let d = crate::cli::time::parse_duration(&v).ok_or_else(|| {
                    anyhow::anyhow!("invalid --min-rtt {v:?} (expected a duration like 20ms)")
                })?;
                let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1);
                pair.both(|f| ext(f).min_rtt_ns = ns);
            }
            "retransmits" => pair.both(|f| ext(f).retransmits = true),
            "tcp-reset" => pair.both(|f| ext(f).tcp_reset = true),
            other => bail!("unhandled filter flag --{other}"),
        }
    }
    Ok((white.into_filters(), black.into_filters()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn not_negates_only_the_next_filter_flag() {
        let got = ordered_filter_args(&args(
            "observe --last 10 --not --port 80 --http-method=GET -4 -o json --not -t l7",
        ))
        .unwrap();
        let view: Vec<_> = got
            .iter()
            .map(|a| (a.name, a.value.as_str(), a.negated))
            .collect();
        assert_eq!(
            view,
            [
                ("port", "80", true),
                ("http-method", "GET", false),
                ("ipv4", "", false),
                ("type", "l7", true),
            ]
        );
        assert!(ordered_filter_args(&args("--not --last 5")).is_err());
        assert!(ordered_filter_args(&args("--port 80 --not")).is_err());
    }

    #[test]
    fn pods_namespaces_and_fqdns() {
        let a = ordered_filter_args(&args(
            "--pod shop/cart --to-namespace kube-system --not --fqdn *.example.org -n shop",
        ))
        .unwrap();
        let (wl, bl) = build_filters(&a).unwrap();
        assert_eq!(wl.len(), 2);
        assert_eq!(wl[0].source_pod, ["shop/cart", "shop/"]);
        assert_eq!(
            wl[1].destination_pod,
            ["shop/cart", "kube-system/", "shop/"]
        );
        assert_eq!(bl[0].source_fqdn, ["*.example.org"]);
        assert_eq!(bl[1].destination_fqdn, ["*.example.org"]);
        let a = ordered_filter_args(&args("--from-identity host --identity 6")).unwrap();
        let (wl, _) = build_filters(&a).unwrap();
        assert_eq!(
            (
                &wl[0].source_identity,
                &wl[1].source_identity,
                &wl[1].destination_identity
            ),
            (&vec![1, 6], &vec![1], &vec![6])
        );
        let a = ordered_filter_args(&args("--to-label reserved:world")).unwrap();
        assert_eq!(
            build_filters(&a).unwrap().0[0].destination_label,
            ["reserved:world"]
        );
        for bad in [
            "--pod /",
            "--fqdn a/b",
            "--to-pod a/b/c",
            "--identity nope",
            "--label a=b=c",
        ] {
            assert!(
                build_filters(&ordered_filter_args(&args(bad)).unwrap()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn either_direction_and_negation() {
        let a =
            ordered_filter_args(&args("--ip 10.0.0.1 --protocol tcp --not --to-port 22")).unwrap();
        let (wl, bl) = build_filters(&a).unwrap();
        assert_eq!(wl.len(), 2);
        assert_eq!(wl[0].source_ip, ["10.0.0.1"]);
        assert_eq!(wl[1].destination_ip, ["10.0.0.1"]);
        assert!(wl.iter().all(|f| f.protocol == ["tcp"]));
        assert_eq!(bl.len(), 1);
        assert_eq!(bl[0].destination_port, ["22"]);
    }

    #[test]
    fn tcp_health_flags() {
        let a =
            ordered_filter_args(&args("--min-rtt 20ms --retransmits --not --tcp-reset")).unwrap();
        let (wl, bl) = build_filters(&a).unwrap();
        let e = wl[0].flowscope.as_ref().unwrap();
        assert_eq!(
            (e.min_rtt_ns, e.retransmits, e.tcp_reset),
            (20_000_000, true, false)
        );
        assert!(bl[0].flowscope.as_ref().unwrap().tcp_reset);
        let bad = ordered_filter_args(&args("--min-rtt soon")).unwrap();
        assert!(build_filters(&bad).is_err());
    }

    #[test]
    fn flowscope_flags_and_bad_values() {
        let a = ordered_filter_args(&args("--pid 42 --comm nginx --grpc-service Greeter")).unwrap();
        let (wl, bl) = build_filters(&a).unwrap();
        assert!(bl.is_empty());
        let e = wl[0].flowscope.as_ref().unwrap();
        assert_eq!(
            (e.pid.as_slice(), e.comm.as_slice()),
            (&[42][..], &["nginx".to_string()][..])
        );
        for bad in [
            "--ip 10.0.0.0/40",
            "--http-status 99",
            "--http-path (",
            "--verdict MAYBE",
            "--pid x",
            "--protocol quic",
        ] {
            let a = ordered_filter_args(&args(bad)).unwrap();
            assert!(build_filters(&a).is_err(), "{bad}");
        }
    }
}
