//! flowscope's `pid` and `comm` filters (`FlowFilter.flowscope`): a process that owns either
//! end of the flow on this node (the local socket, or the peer's when it is local too), like
//! `--ip` matches either address. `comm` accepts `*` wildcards.

use super::{any_of, regex, Check, FilterError};
use crate::api::proto::flow::FlowFilter;

/// Compiles `flowscope.pid` and `flowscope.comm`.
pub fn compile(filter: &FlowFilter) -> Result<Vec<Check>, FilterError> {
    let Some(ext) = filter.flowscope.as_ref() else {
        return Ok(Vec::new());
    };
    let mut checks = any_of(ext.pid.clone(), |pid, f| {
        f.ext.is_some_and(|e| {
            e.process
                .iter()
                .chain(e.peer_process.iter())
                .any(|p| p.pid == *pid)
        })
    });
    let res = ext
        .comm
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
    checks.extend(any_of(res, |re, f| {
        f.ext.is_some_and(|e| {
            e.process
                .iter()
                .chain(e.peer_process.iter())
                .any(|p| re.is_match(&p.comm))
        })
    }));
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::api::proto::flowscope::FlowFilterExtension;

    #[test]
    fn table() {
        let nginx = http_request(); // pid 456 nginx
        let none = tcp_syn(); // no process
        let cases: &[(&[u32], &[&str], bool)] = &[
            (&[456], &[], true),
            (&[1, 456], &[], true),
            (&[1], &[], false),
            (&[], &["nginx"], true),
            (&[], &["ngi*"], true),
            (&[], &["curl"], false),
            (&[456], &["curl"], false),
            (&[456], &["nginx"], true),
        ];
        for (i, (pids, comms, want)) in cases.iter().enumerate() {
            let f = FlowFilter {
                flowscope: Some(FlowFilterExtension {
                    pid: pids.to_vec(),
                    comm: comms.iter().map(|s| s.to_string()).collect(),
                    ..Default::default()
                }),
                ..Default::default()
            };
            assert_eq!(matches(&f, &nginx), *want, "case {i}");
            assert!(!matches(&f, &none), "case {i}");
        }
    }
}
