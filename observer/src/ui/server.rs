//! The UI's HTTP server: the embedded page, a JSON snapshot of the map, a filter check, and the
//! flow table's live stream as server-sent events (a GetFlows --follow per page, filtered by
//! the agent with the filter box's flags).

use std::{
    convert::Infallible,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use axum::{
    extract::{Query, State as AxumState},
    http::{header, StatusCode},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
    routing::get,
    Router,
};
use serde::Deserialize;
use serde_json::json;
use tokio_stream::{wrappers::ReceiverStream, StreamExt};

use super::{assets, feed, filter_box, map::ServiceMap, rows, UiArgs};
use crate::{
    api::proto::observer::{get_flows_response::ResponseTypes, observer_client::ObserverClient},
    cli::client::{connect_with, status_error},
};

/// What the handlers share.
#[derive(Clone)]
pub struct State {
    /// The command line (agent address, TLS, top N, retention).
    pub args: Arc<UiArgs>,
    map: Arc<Mutex<ServiceMap>>,
    agent_error: Arc<Mutex<Option<String>>>,
}

impl State {
    /// A map for `args`' retention and cap; not yet fed.
    pub fn new(args: &UiArgs) -> Self {
        State {
            map: Arc::new(Mutex::new(ServiceMap::new(
                args.retention.as_nanos() as u64,
                args.max_flows,
            ))),
            args: Arc::new(args.clone()),
            agent_error: Arc::default(),
        }
    }

    /// The map (a poisoned lock only means a handler panicked mid-update: keep serving).
    pub fn map(&self) -> MutexGuard<'_, ServiceMap> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How far back the map looks.
    pub fn retention_ns(&self) -> u64 {
        self.args.retention.as_nanos() as u64
    }

    /// Why the feed is not streaming (`None` while it is).
    pub fn set_agent_error(&self, e: Option<String>) {
        *self.agent_error.lock().unwrap_or_else(|e| e.into_inner()) = e;
    }

    fn agent_error(&self) -> Option<String> {
        self.agent_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Every route of the UI.
pub fn router(state: State) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", assets::INDEX_HTML) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", assets::APP_JS) }),
        )
        .route(
            "/app.css",
            get(|| async { asset("text/css; charset=utf-8", assets::APP_CSS) }),
        )
        .route("/api/map", get(map_snapshot))
        .route("/api/filter", get(check_filter))
        .route("/api/flows", get(flow_stream))
        .with_state(state)
}

fn asset(content_type: &'static str, body: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // The page is built into the binary: a new binary may bring a new page.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

fn json_response(status: StatusCode, v: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

#[derive(Deserialize)]
struct MapQuery {
    /// Window in seconds.
    window: Option<f64>,
    top: Option<usize>,
}

async fn map_snapshot(AxumState(state): AxumState<State>, Query(q): Query<MapQuery>) -> Response {
    let now = feed::now_ns();
    let window_ns = q
        .window
        .filter(|w| w.is_finite() && *w > 0.0)
        .map(|w| (w * 1e9) as u64)
        .unwrap_or(300_000_000_000);
    let top = q.top.unwrap_or(state.args.top).max(1);
    let snapshot = {
        let mut map = state.map();
        map.expire(now);
        map.snapshot(now, window_ns, top)
    };
    let mut v = serde_json::to_value(&snapshot).unwrap_or_default();
    v["agent"] = json!({
        "server": state.args.server,
        "error": state.agent_error(),
        "retention_ns": state.retention_ns(),
    });
    json_response(StatusCode::OK, &v)
}

#[derive(Deserialize)]
struct FlowsQuery {
    /// The filter box's line, in `flowscope observe`'s flag syntax.
    #[serde(default)]
    filter: String,
    /// Flows from before the page asked to start with.
    last: Option<u64>,
    /// Instead of `last`: every flow since this time (ns since the epoch), for a page picking
    /// up where its stream broke off.
    since_ns: Option<u64>,
}

async fn check_filter(Query(q): Query<FlowsQuery>) -> Response {
    match filter_box::parse(&q.filter) {
        Ok(_) => json_response(StatusCode::OK, &json!({ "ok": true })),
        Err(e) => json_response(StatusCode::BAD_REQUEST, &json!({ "error": e.to_string() })),
    }
}

/// Rows as server-sent events: `event: flow` with a row, `event: problem` with what went
/// wrong (the page shows it and EventSource reconnects by itself).
async fn flow_stream(AxumState(state): AxumState<State>, Query(q): Query<FlowsQuery>) -> Response {
    let (white, black) = match filter_box::parse(&q.filter) {
        Ok(f) => f,
        Err(e) => {
            return json_response(StatusCode::BAD_REQUEST, &json!({ "error": e.to_string() }))
        }
    };
    let req = match q.since_ns {
        Some(since) => feed::follow_request(Some(since), 0, white, black),
        None => feed::follow_request(None, q.last.unwrap_or(200).min(10_000), white, black),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(256);
    tokio::spawn(async move {
        let server = state.args.server.clone();
        let result = async {
            let channel = connect_with(&server, &state.args.tls).await?;
            let mut stream = ObserverClient::new(channel)
                .get_flows(req)
                .await
                .map_err(|s| status_error(&server, &s))?
                .into_inner();
            while let Some(item) = stream.next().await {
                let resp = item.map_err(|s| status_error(&server, &s))?;
                let Some(ResponseTypes::Flow(f)) = resp.response_types else {
                    continue;
                };
                let row = rows::row(&f, state.map().resolver());
                let event = Event::default().event("flow").data(row.to_string());
                if tx.send(event).await.is_err() {
                    // The page went away: dropping the stream cancels the GetFlows call.
                    return Ok(());
                }
            }
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = result {
            let _ = tx
                .send(Event::default().event("problem").data(format!("{e:#}")))
                .await;
        }
    });
    let events = ReceiverStream::new(rx).map(Ok::<_, Infallible>);
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::api::{
        convert::timestamp,
        proto::flow::{layer7::Record, Flow, Http, Ip, L7FlowType, Layer7},
    };

    /// GET `path` from a server on `addr`: (status, body).
    async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: ui\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        let status = out[9..12].parse().unwrap();
        let body = out
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    fn response(client_port: u32, code: u32) -> Flow {
        Flow {
            time: Some(timestamp(feed::now_ns() - 1_000_000_000)),
            ip: Some(Ip {
                source: "10.0.0.1".into(),
                destination: "10.0.0.2".into(),
                ..Default::default()
            }),
            l4: Some(crate::api::proto::flow::Layer4 {
                protocol: Some(crate::api::proto::flow::layer4::Protocol::Tcp(
                    crate::api::proto::flow::Tcp {
                        source_port: 80,
                        destination_port: client_port,
                        flags: None,
                    },
                )),
            }),
            is_reply: Some(true),
            l7: Some(Layer7 {
                r#type: L7FlowType::Response as i32,
                latency_ns: 2_000_000,
                record: Some(Record::Http(Http {
                    code,
                    ..Default::default()
                })),
            }),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn the_map_endpoint_serves_the_aggregated_snapshot_and_the_page() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            ui: UiArgs,
        }
        let args = Cli::parse_from(["ui", "--server", "unix:///nonexistent.sock"]).ui;
        let state = State::new(&args);
        for (port, code) in [(40000, 200), (40001, 200), (40002, 500)] {
            state.map().observe(&response(port, code));
        }
        state.set_agent_error(Some("cannot reach the agent".into()));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, router(state)).await });

        let (status, body) = get(addr, "/api/map?window=60").await;
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["window_ns"], 60_000_000_000u64);
        assert_eq!(v["agent"]["error"], "cannot reach the agent");
        let e = &v["edges"][0];
        assert_eq!(e["id"], "ip:10.0.0.2->ip:10.0.0.1");
        assert_eq!(
            (e["requests"].as_u64(), e["errors"].as_u64()),
            (Some(3), Some(1))
        );
        assert_eq!(e["statuses"], serde_json::json!({"2xx": 2, "5xx": 1}));
        assert_eq!(e["p99_latency_ns"], 2_000_000);
        assert_eq!(v["nodes"].as_array().unwrap().len(), 2);

        // The page and its bundle are served from the binary.
        let (status, page) = get(addr, "/").await;
        assert!(status == 200 && page.contains("app.js"), "{status} {page}");
        let (status, js) = get(addr, "/app.js").await;
        assert!(status == 200 && js.len() > 10_000);

        // The filter box: observe's flags pass, anything else is refused with the reason.
        let (status, _) = get(
            addr,
            "/api/filter?filter=--http-status%205%2B%20--comm%20curl",
        )
        .await;
        assert_eq!(status, 200);
        let (status, body) = get(addr, "/api/filter?filter=--bogus").await;
        assert!(
            status == 400 && body.contains("not a filter flag"),
            "{status} {body}"
        );
        let (status, _) = get(addr, "/api/flows?filter=--http-status%20abc").await;
        assert_eq!(status, 400);
    }
}
