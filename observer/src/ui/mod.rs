//! `flowscope ui`: a live service map and flow table in the browser, as a client of the
//! Observer API (like Hubble UI is of Relay): it works against the local agent's socket, a
//! remote agent over TLS, or anything else that speaks `observer.Observer`.
//!
//! The aggregation (flows → map) is Rust ([`map`]); the page (TypeScript under `ui/`, built
//! into this binary by build.rs, see [`assets`]) only draws what the server hands it.

pub mod assets;
pub mod endpoint;
pub mod feed;
pub mod filter_box;
pub mod map;
pub mod rows;
pub mod server;

use std::{net::SocketAddr, time::Duration};

use anyhow::{Context, Result};

use crate::cli::client::{TlsArgs, DEFAULT_SERVER};

/// Serve the service map and flow table on --listen.
#[derive(clap::Args, Debug, Clone)]
pub struct UiArgs {
    /// Agent API address: unix:///path or host:port.
    #[arg(long, default_value = DEFAULT_SERVER, env = "FLOWSCOPE_SERVER")]
    pub server: String,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Where to serve the page (plain HTTP: keep it on loopback or put it behind a proxy).
    #[arg(long, default_value = "127.0.0.1:9966")]
    pub listen: SocketAddr,
    /// Nodes the map shows; the others are folded into one "other" node.
    #[arg(long, default_value_t = 25)]
    pub top: usize,
    /// How far back the map can look: the longest window the page offers (e.g. 15m, 1h).
    #[arg(long, default_value = "15m", value_parser = parse_retention)]
    pub retention: Duration,
    /// Flows the map keeps at most (the oldest go first).
    #[arg(long, default_value_t = 500_000)]
    pub max_flows: usize,
}

fn parse_retention(s: &str) -> Result<Duration, String> {
    crate::cli::time::parse_duration(s)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{s:?}: expected a duration such as 15m or 1h"))
}

/// Runs `flowscope ui` until Ctrl-C.
pub fn run(args: UiArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on --listen {}", args.listen))?;
        let state = server::State::new(&args);
        tokio::spawn(feed::run(state.clone()));
        let addr = listener.local_addr()?;
        // The line the e2e test and a user wait for.
        eprintln!(
            "flowscope ui: open http://{addr}/ (flows from {}; Ctrl-C to stop)",
            args.server
        );
        axum::serve(listener, server::router(state))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("the UI's HTTP server failed")
    })
}
