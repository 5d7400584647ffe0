//! One flow as a row of the page's flow table: the columns the page shows, the map nodes of
//! its two ends (so a click on an edge can pick its rows), and the whole flow as protobuf JSON
//! for the detail pane and the export.

use serde_json::{json, Value};

use super::endpoint::EndpointResolver;
use crate::{
    api::{convert::timestamp_ns, proto::flow::Flow, proto::flow::Verdict},
    cli::{json::flow_to_json, printer},
};

/// The row of `f`, its ends named by `resolver` (the map's, so ids agree with the map's).
pub fn row(f: &Flow, resolver: &mut EndpointResolver) -> Value {
    let ends = resolver.ends(f);
    let reply = f.is_reply.unwrap_or(false);
    let (client, server, source, destination) = match &ends {
        Some(e) => {
            let name = |n: &super::endpoint::Node, addr: &str| {
                if n.label == addr || addr.starts_with(&format!("{}:", n.label)) {
                    addr.to_string()
                } else {
                    format!("{} {addr}", n.label)
                }
            };
            // An owner the map learned from a later flow of the same socket (a backlog's SYN).
            let time = f.time.as_ref().map(timestamp_ns).unwrap_or(0);
            let late = |node, socket: &Option<Box<(String, u32)>>| {
                socket
                    .as_deref()
                    .and_then(|s| resolver.late_owner(s, time))
                    .unwrap_or(node)
            };
            let (client, server) = (
                late(&e.client, &e.client_socket),
                late(&e.server, &e.server_socket),
            );
            let c = name(client, &e.client_addr);
            let s = name(server, &e.server_addr);
            let (src, dst) = if reply { (s, c) } else { (c, s) };
            (client.id.clone(), server.id.clone(), src, dst)
        }
        None => Default::default(),
    };
    let flow: Value = serde_json::from_str(&flow_to_json(f)).unwrap_or(Value::Null);
    json!({
        "time_ns": f.time.as_ref().map(timestamp_ns).unwrap_or(0),
        "client": client,
        "server": server,
        "edge": format!("{client}->{server}"),
        "source": source,
        "destination": destination,
        "type": printer::flow_type(f),
        "verdict": Verdict::try_from(f.verdict).map(|v| v.as_str_name()).unwrap_or("VERDICT_UNKNOWN"),
        "summary": printer::summary(f),
        "flow": flow,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::proto::flow::{Ip, TrafficDirection};

    #[test]
    fn a_response_row_names_its_edge_client_first_and_its_columns_source_first() {
        let f = Flow {
            time: Some(crate::api::convert::timestamp(5)),
            ip: Some(Ip {
                source: "10.0.0.1".into(),
                destination: "10.0.0.2".into(),
                ..Default::default()
            }),
            is_reply: Some(true),
            traffic_direction: TrafficDirection::Ingress as i32,
            verdict: Verdict::Forwarded as i32,
            ..Default::default()
        };
        let r = row(&f, &mut EndpointResolver::default());
        assert_eq!(r["edge"], "ip:10.0.0.2->ip:10.0.0.1");
        assert_eq!(
            (r["source"].as_str(), r["destination"].as_str()),
            (Some("10.0.0.1"), Some("10.0.0.2"))
        );
        assert_eq!(r["verdict"], "FORWARDED");
        assert_eq!(r["time_ns"], 5);
        assert_eq!(r["flow"]["IP"]["source"], "10.0.0.1");
    }
}
