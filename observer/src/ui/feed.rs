//! The map's feed: one GetFlows --follow stream from the agent into the [`ServiceMap`],
//! resumed after the last flow seen whenever the agent goes away and comes back.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_stream::StreamExt;

use super::server::State;
use crate::{
    api::{
        convert::{timestamp, timestamp_ns},
        proto::{
            flowscope::GetFlowsRequestExtension,
            observer::{
                get_flows_response::ResponseTypes, observer_client::ObserverClient, GetFlowsRequest,
            },
        },
    },
    cli::client::{connect_with, status_error},
};

/// Nanoseconds since the epoch, now.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A GetFlows request for every flow since `since_ns` and then new ones, with flowscope's
/// extension (processes, gRPC, TCP health) and the given filters.
pub fn follow_request(
    since_ns: Option<u64>,
    number: u64,
    whitelist: Vec<crate::api::proto::flow::FlowFilter>,
    blacklist: Vec<crate::api::proto::flow::FlowFilter>,
) -> GetFlowsRequest {
    GetFlowsRequest {
        number,
        first: false,
        follow: true,
        whitelist,
        blacklist,
        since: since_ns.map(timestamp),
        until: None,
        extensions: Some(
            GetFlowsRequestExtension {
                include_flow_extension: true,
            }
            .to_any(),
        ),
    }
}

/// Streams flows into the map forever; the agent's state is told to the page through
/// `State::agent_error`.
pub async fn run(state: State) {
    let mut since = now_ns().saturating_sub(state.retention_ns());
    let mut last_err = String::new();
    loop {
        let err = match follow(&state, &mut since).await {
            Ok(()) => "the agent ended the flow stream".to_string(),
            Err(e) => format!("{e:#}"),
        };
        // Said once per kind of failure, not once a second while the agent is away.
        if err != last_err {
            tracing::warn!("{err}; retrying every second");
            last_err.clone_from(&err);
        }
        state.set_agent_error(Some(err));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn follow(state: &State, since: &mut u64) -> anyhow::Result<()> {
    let server = &state.args.server;
    let channel = connect_with(server, &state.args.tls).await?;
    let req = follow_request(Some(*since), 0, vec![], vec![]);
    let mut stream = ObserverClient::new(channel)
        .get_flows(req)
        .await
        .map_err(|s| status_error(server, &s))?
        .into_inner();
    state.set_agent_error(None);
    while let Some(item) = stream.next().await {
        let resp = item.map_err(|s| status_error(server, &s))?;
        if let Some(ResponseTypes::Flow(f)) = resp.response_types {
            // Resume strictly after the last flow seen (since is inclusive).
            if let Some(t) = f.time.as_ref().map(timestamp_ns) {
                *since = (*since).max(t + 1);
            }
            state.map().observe(&f);
        }
    }
    Ok(())
}
