//! flowscope's `grpc_service` / `grpc_method` filters. A service matches by its full name
//! (`helloworld.Greeter`) or its last component (`Greeter`).

use super::{any_of, Check, FilterError};
use crate::api::proto::flow::FlowFilter;

/// Compiles `flowscope.grpc_service` and `flowscope.grpc_method`.
pub fn compile(filter: &FlowFilter) -> Result<Vec<Check>, FilterError> {
    let Some(ext) = filter.flowscope.as_ref() else {
        return Ok(Vec::new());
    };
    let mut checks = any_of(ext.grpc_service.clone(), |want, f| {
        f.ext.and_then(|e| e.grpc.as_ref()).is_some_and(|g| {
            g.service == *want || g.service.rsplit('.').next() == Some(want.as_str())
        })
    });
    checks.extend(any_of(ext.grpc_method.clone(), |want, f| {
        f.ext
            .and_then(|e| e.grpc.as_ref())
            .is_some_and(|g| g.method == *want)
    }));
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::api::proto::{
        flow::Flow,
        flowscope::{FlowExtension, FlowFilterExtension, Grpc},
    };

    fn grpc_flow() -> Flow {
        let mut f = http_request();
        f.extensions = Some(
            FlowExtension {
                grpc: Some(Grpc {
                    service: "helloworld.Greeter".into(),
                    method: "SayHello".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }
            .to_any(),
        );
        f
    }

    #[test]
    fn table() {
        let g = grpc_flow();
        let plain = http_request();
        let cases: &[(&[&str], &[&str], bool)] = &[
            (&["helloworld.Greeter"], &[], true),
            (&["Greeter"], &[], true),
            (&["Other"], &[], false),
            (&[], &["SayHello"], true),
            (&["Greeter"], &["SayBye"], false),
            (&["Other", "Greeter"], &["SayBye", "SayHello"], true),
        ];
        for (i, (svcs, methods, want)) in cases.iter().enumerate() {
            let f = FlowFilter {
                flowscope: Some(FlowFilterExtension {
                    grpc_service: svcs.iter().map(|s| s.to_string()).collect(),
                    grpc_method: methods.iter().map(|s| s.to_string()).collect(),
                    ..Default::default()
                }),
                ..Default::default()
            };
            assert_eq!(matches(&f, &g), *want, "case {i}");
            assert!(!matches(&f, &plain), "case {i}");
        }
    }
}
