//! Protobuf's canonical JSON mapping for the API's messages (what `hubble observe -o jsonpb`
//! writes: proto field names, enum names, 64-bit integers as strings, RFC 3339 times, `Any`
//! with `@type`), done by reflection over the descriptors build.rs embedded.

use prost::Message;
use prost_reflect::{DeserializeOptions, DynamicMessage, SerializeOptions};

use crate::api::proto::{descriptor_pool, flow::Flow, observer::GetFlowsResponse};

/// Why a line of JSON could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// Not JSON, or not a GetFlowsResponse / Flow.
    #[error("not a flow in protobuf JSON: {0}")]
    Decode(String),
}

fn to_json<M: Message>(msg: &M, name: &str) -> String {
    let desc = descriptor_pool()
        .get_message_by_name(name)
        .expect("message is in the embedded descriptor set");
    let dynamic = DynamicMessage::decode(desc, msg.encode_to_vec().as_slice())
        .expect("a message we encoded decodes");
    let mut ser = serde_json::Serializer::new(Vec::new());
    let opts = SerializeOptions::new().use_proto_field_name(true);
    dynamic
        .serialize_with_options(&mut ser, &opts)
        .expect("serialising to memory cannot fail");
    String::from_utf8(ser.into_inner()).expect("serde_json writes UTF-8")
}

/// One GetFlowsResponse as a JSON line (no newline).
pub fn response_to_json(r: &GetFlowsResponse) -> String {
    to_json(r, "observer.GetFlowsResponse")
}

/// One Flow as a JSON line (no newline).
pub fn flow_to_json(f: &Flow) -> String {
    to_json(f, "flow.Flow")
}

fn from_json<M: Message + Default>(line: &str, name: &str) -> Result<M, JsonError> {
    let desc = descriptor_pool()
        .get_message_by_name(name)
        .expect("message is in the embedded descriptor set");
    let mut de = serde_json::Deserializer::from_str(line);
    // Fields Hubble has and we don't model (endpoints, node_status, ...) are skipped.
    let opts = DeserializeOptions::new().deny_unknown_fields(false);
    let dynamic = DynamicMessage::deserialize_with_options(desc, &mut de, &opts)
        .map_err(|e| JsonError::Decode(e.to_string()))?;
    de.end().map_err(|e| JsonError::Decode(e.to_string()))?;
    dynamic
        .transcode_to::<M>()
        .map_err(|e| JsonError::Decode(e.to_string()))
}

/// Reads one line of `-o jsonpb` (a GetFlowsResponse) or of `-o json` (a bare Flow).
pub fn response_from_json(line: &str) -> Result<GetFlowsResponse, JsonError> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| JsonError::Decode(e.to_string()))?;
    let obj = value
        .as_object()
        .ok_or_else(|| JsonError::Decode("expected a JSON object".into()))?;
    let is_response = [
        "flow",
        "lost_events",
        "lostEvents",
        "node_status",
        "nodeStatus",
    ]
    .iter()
    .any(|k| obj.contains_key(*k));
    if is_response {
        from_json(line, "observer.GetFlowsResponse")
    } else {
        let flow: Flow = from_json(line, "flow.Flow")?;
        Ok(GetFlowsResponse {
            node_name: flow.node_name.clone(),
            time: flow.time,
            response_types: Some(
                crate::api::proto::observer::get_flows_response::ResponseTypes::Flow(flow),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::proto::observer::get_flows_response::ResponseTypes;
    use crate::api::{convert::flow_to_proto, convert::tests as conv};

    #[test]
    fn jsonpb_round_trips_with_hubble_field_names() {
        let mut flow = flow_to_proto(&conv::http_request(), "node-a");
        flow.uuid = "u-1".into();
        let resp = GetFlowsResponse {
            node_name: "node-a".into(),
            time: flow.time,
            response_types: Some(ResponseTypes::Flow(flow.clone())),
        };
        let line = response_to_json(&resp);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["flow"]["IP"]["ipVersion"], "IPv4");
        assert_eq!(v["flow"]["Type"], "L7");
        assert_eq!(v["flow"]["verdict"], "FORWARDED");
        assert_eq!(v["flow"]["l4"]["TCP"]["destination_port"], 80);
        assert_eq!(v["flow"]["l7"]["http"]["method"], "GET");
        assert_eq!(v["flow"]["socket_cookie"], "4242");
        assert_eq!(v["flow"]["is_reply"], false);
        assert_eq!(v["flow"]["event_type"]["type"], 129);
        assert_eq!(v["flow"]["traffic_direction"], "INGRESS");
        assert_eq!(v["flow"]["time"], "2026-11-25T13:20:01.123456789Z");
        assert_eq!(v["node_name"], "node-a");
        assert_eq!(
            v["flow"]["extensions"]["@type"],
            "type.googleapis.com/flowscope.FlowExtension"
        );
        assert_eq!(v["flow"]["extensions"]["process"]["comm"], "nginx");
        assert_eq!(response_from_json(&line).unwrap(), resp);
        // A bare flow (-o json) reads back as a response too.
        let bare = flow_to_json(&flow);
        assert_eq!(response_from_json(&bare).unwrap(), resp);
    }

    #[test]
    fn unknown_hubble_fields_are_skipped_and_garbage_rejected() {
        let line = r#"{"flow":{"verdict":"DROPPED","source":{"pod_name":"x"},"Summary":"s"},"node_name":"n"}"#;
        let r = response_from_json(line).unwrap();
        let Some(ResponseTypes::Flow(f)) = r.response_types else {
            panic!()
        };
        assert_eq!(f.verdict, 2);
        assert!(response_from_json("not json").is_err());
        assert!(response_from_json("[1]").is_err());
    }
}
