//! `flowscope status`: Hubble's ServerStatus plus flowscope's agent status (capture path,
//! attachments, attribution, every drop counter).

use std::time::Duration;

use anyhow::{Context, Result};

use super::client::{connect_with, status_error, TlsArgs, DEFAULT_SERVER};
use crate::api::proto::{
    flowscope::{agent_client::AgentClient, GetAgentStatusRequest, GetAgentStatusResponse},
    observer::{observer_client::ObserverClient, ServerStatusRequest, ServerStatusResponse},
};

/// Output of `flowscope status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum StatusFormat {
    /// Aligned `Key: value` lines.
    #[default]
    Text,
    /// One JSON object.
    Json,
}

/// Show what the running agent is doing.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Agent API address: unix:///path or host:port.
    #[arg(long, default_value = DEFAULT_SERVER, env = "FLOWSCOPE_SERVER")]
    pub server: String,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: StatusFormat,
}

/// `1h2m3s` style.
fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// Renders the two responses (agent status is absent on a plain Hubble server).
pub fn render_text(
    server: &ServerStatusResponse,
    agent: Option<&GetAgentStatusResponse>,
) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<13}{v}\n"));
    if let Some(a) = agent {
        line("Node:", a.node_name.clone());
    }
    line("Version:", server.version.clone());
    line(
        "Uptime:",
        human_duration(Duration::from_nanos(server.uptime_ns)),
    );
    line(
        "Flows:",
        format!(
            "{}/{} ({:.2}%) in the ring, {} seen",
            server.num_flows,
            server.max_flows,
            if server.max_flows == 0 {
                0.0
            } else {
                server.num_flows as f64 * 100.0 / server.max_flows as f64
            },
            server.seen_flows
        ),
    );
    if let Some(a) = agent {
        line("Capture:", a.capture_path.clone());
        let att = if a.attachments.is_empty() {
            "none".to_string()
        } else {
            a.attachments
                .iter()
                .map(|x| format!("{} ({})", x.iface, x.method))
                .collect::<Vec<_>>()
                .join(", ")
        };
        line("Attached:", att);
        line(
            "Attribution:",
            if a.attribution.is_empty() {
                "none".into()
            } else {
                a.attribution.clone()
            },
        );
        if !a.tls_libraries.is_empty() {
            out.push_str("TLS libraries:\n");
            for t in &a.tls_libraries {
                let state = if t.hooked { "hooked" } else { "not hooked" };
                let detail = if t.detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", t.detail)
                };
                out.push_str(&format!(
                    "  pid {} {}: {} {} {state}{detail}\n",
                    t.pid, t.comm, t.kind, t.library
                ));
            }
        }
        out.push_str("Counters:\n");
        let w = a.counters.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in &a.counters {
            out.push_str(&format!("  {:<w$}  {}\n", c.name, c.value));
        }
    }
    out
}

fn render_json(server: &ServerStatusResponse, agent: Option<&GetAgentStatusResponse>) -> String {
    let mut v = serde_json::json!({
        "version": server.version,
        "uptime_ns": server.uptime_ns,
        "num_flows": server.num_flows,
        "max_flows": server.max_flows,
        "seen_flows": server.seen_flows,
    });
    if let Some(a) = agent {
        v["node_name"] = a.node_name.clone().into();
        v["capture_path"] = a.capture_path.clone().into();
        v["attribution"] = a.attribution.clone().into();
        v["attachments"] = a
            .attachments
            .iter()
            .map(|x| serde_json::json!({"iface": x.iface, "method": x.method}))
            .collect::<Vec<_>>()
            .into();
        v["tls_libraries"] = a
            .tls_libraries
            .iter()
            .map(|t| {
                serde_json::json!({"pid": t.pid, "comm": t.comm, "library": t.library,
                    "kind": t.kind, "hooked": t.hooked, "detail": t.detail})
            })
            .collect::<Vec<_>>()
            .into();
        let mut counters = serde_json::Map::new();
        for c in &a.counters {
            counters.insert(c.name.clone(), c.value.into());
        }
        v["counters"] = counters.into();
    }
    v.to_string()
}

/// Runs `flowscope status`.
pub fn run(args: StatusArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (server, agent) = rt.block_on(async {
        let channel = connect_with(&args.server, &args.tls).await?;
        let server = ObserverClient::new(channel.clone())
            .server_status(ServerStatusRequest {})
            .await
            .map_err(|s| status_error(&args.server, &s))?
            .into_inner();
        let agent = match AgentClient::new(channel)
            .get_agent_status(GetAgentStatusRequest {})
            .await
        {
            Ok(r) => Some(r.into_inner()),
            // A real Hubble server has no flowscope.Agent service.
            Err(s) if s.code() == tonic::Code::Unimplemented => None,
            Err(s) => return Err(status_error(&args.server, &s)),
        };
        anyhow::Ok((server, agent))
    })?;
    match args.output {
        StatusFormat::Text => print!("{}", render_text(&server, agent.as_ref())),
        StatusFormat::Json => println!("{}", render_json(&server, agent.as_ref())),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::proto::flowscope::{Attachment, Counter};

    #[test]
    fn text_golden() {
        let server = ServerStatusResponse {
            num_flows: 10,
            max_flows: 100,
            seen_flows: 12,
            uptime_ns: 3_723_000_000_000,
            version: "flowscope v0.1.0".into(),
            ..Default::default()
        };
        let agent = GetAgentStatusResponse {
            node_name: "n1".into(),
            capture_path: "tc".into(),
            attachments: vec![Attachment {
                iface: "eth0".into(),
                method: "tcx".into(),
            }],
            attribution: "kprobe".into(),
            counters: vec![
                Counter {
                    name: "kernel_ring_full_lost".into(),
                    value: 3,
                },
                Counter {
                    name: "lost_events_observer_queue".into(),
                    value: 0,
                },
            ],
            ..Default::default()
        };
        assert_eq!(
            render_text(&server, Some(&agent)),
            "Node:        n1\n\
             Version:     flowscope v0.1.0\n\
             Uptime:      1h2m3s\n\
             Flows:       10/100 (10.00%) in the ring, 12 seen\n\
             Capture:     tc\n\
             Attached:    eth0 (tcx)\n\
             Attribution: kprobe\n\
             Counters:\n\
             \x20 kernel_ring_full_lost       3\n\
             \x20 lost_events_observer_queue  0\n"
        );
        let j: serde_json::Value =
            serde_json::from_str(&render_json(&server, Some(&agent))).unwrap();
        assert_eq!(j["counters"]["kernel_ring_full_lost"], 3);
    }
}
