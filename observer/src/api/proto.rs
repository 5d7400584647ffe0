//! Generated gRPC types (build.rs compiles ../../proto with protox) and their descriptors.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// Hubble's `flow` package.
pub mod flow {
    tonic::include_proto!("flow");
}

/// Hubble's `observer` package: the Observer service.
pub mod observer {
    tonic::include_proto!("observer");
}

/// Hubble's `relay` package (node states for GetNodes).
pub mod relay {
    tonic::include_proto!("relay");
}

/// Hubble's `peer` package: the Peer service Relay discovers nodes with.
pub mod peer {
    tonic::include_proto!("peer");
}

/// flowscope's extension messages and the Agent service.
pub mod flowscope {
    tonic::include_proto!("flowscope");
}

use std::sync::OnceLock;

use prost::Message;
use prost_reflect::DescriptorPool;

/// `type_url` of a [`flowscope::FlowExtension`] packed into `flow.Flow.extensions`.
pub const FLOW_EXTENSION_TYPE_URL: &str = "type.googleapis.com/flowscope.FlowExtension";
/// `type_url` of a [`flowscope::GetFlowsRequestExtension`] in `GetFlowsRequest.extensions`.
pub const REQUEST_EXTENSION_TYPE_URL: &str =
    "type.googleapis.com/flowscope.GetFlowsRequestExtension";

static DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/flowscope_descriptor.bin"));

/// Descriptors of every message of the API (for protobuf's JSON mapping by reflection).
pub fn descriptor_pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(DESCRIPTOR_SET).expect("build.rs wrote a valid descriptor set")
    })
}

impl flowscope::FlowExtension {
    /// Packs the extension for `flow.Flow.extensions`.
    pub fn to_any(&self) -> prost_types::Any {
        prost_types::Any {
            type_url: FLOW_EXTENSION_TYPE_URL.to_string(),
            value: self.encode_to_vec(),
        }
    }

    /// The flowscope extension carried by `flow`, if any (and if it decodes).
    pub fn from_flow(flow: &flow::Flow) -> Option<Self> {
        let any = flow.extensions.as_ref()?;
        if any.type_url != FLOW_EXTENSION_TYPE_URL {
            return None;
        }
        Self::decode(any.value.as_slice()).ok()
    }
}

impl flowscope::GetFlowsRequestExtension {
    /// Packs the extension for `GetFlowsRequest.extensions`.
    pub fn to_any(&self) -> prost_types::Any {
        prost_types::Any {
            type_url: REQUEST_EXTENSION_TYPE_URL.to_string(),
            value: self.encode_to_vec(),
        }
    }

    /// The flowscope extension of `req`, or the default (no flowscope data) when absent.
    pub fn from_request(req: &observer::GetFlowsRequest) -> Self {
        req.extensions
            .as_ref()
            .filter(|a| a.type_url == REQUEST_EXTENSION_TYPE_URL)
            .and_then(|a| Self::decode(a.value.as_slice()).ok())
            .unwrap_or_default()
    }
}
