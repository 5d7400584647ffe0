//! `flowscope`: the node agent and its command-line tools.

use anyhow::Result;

use clap::{Parser, Subcommand};

mod agent;
mod api;
mod cli;
mod config;
mod export;
mod replay;
mod ui;
mod workers;

/// See what every process on this node says over the network.
#[derive(Parser, Debug)]
#[command(name = "flowscope", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Capture traffic on this node and print flows as they happen.
    Agent(Box<agent::AgentArgs>),
    /// Show recent and new flows from the agent (like `hubble observe`).
    Observe(Box<cli::observe::ObserveArgs>),
    /// Show the agent's status: flows, attachments, drop counters.
    Status(cli::status::StatusArgs),
    /// Run the same decoders over a pcap/pcapng capture and print its flows (or spans).
    Replay(Box<replay::ReplayArgs>),
    /// Serve a live service map and flow table in the browser (a client of the agent's API).
    Ui(Box<ui::UiArgs>),
}

fn init_logging() {
    use tracing_subscriber::{fmt, EnvFilter};
    let filter =
        EnvFilter::try_from_env("FLOWSCOPE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Logs go to stderr so stdout carries only flows.
    fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Agent(args) => agent::run(*args),
        Command::Observe(args) => cli::observe::run(*args),
        Command::Status(args) => cli::status::run(args),
        Command::Replay(args) => replay::run(&args),
        Command::Ui(args) => ui::run(*args),
    }
}

/// glibc gives each thread that allocates an arena of its own (up to 8 per core), and the
/// agent's tokio workers, exporter and scan threads each kept a partly used one. One arena:
/// the ring reader task moves between tokio's worker threads, and with two arenas each held
/// its own free pages and fragments (the soak's second arena was 10-20 MiB beside a 11-14 MiB
/// main heap; with one, RssAnon is 12-20 MiB in all, BENCHMARKS.md "Soak memory under 50
/// MB"). The threads that allocate besides the reader (the /proc scans, the exporters) do so
/// rarely, so the one lock is not contended; the agent allows one more per engine worker
/// beyond the first (`--workers`: they decode, and allocate, side by side). An operator's
/// `MALLOC_ARENA_MAX` (which glibc reads at start) wins.
pub(crate) fn limit_malloc_arenas(arenas: usize) {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    // SAFETY: mallopt only sets an allocator parameter (under glibc's own lock); arenas made
    // before stay, later threads share the ones allowed.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas.clamp(1, 64) as libc::c_int);
    }
}

fn main() {
    limit_malloc_arenas(1);
    let cli = Cli::parse();
    init_logging();
    // Errors print as one chain of causes ("what failed: why"), not as a Debug dump with a
    // backtrace, whatever RUST_BACKTRACE says.
    if let Err(e) = run(cli) {
        eprintln!("flowscope: error: {e:#}");
        std::process::exit(1);
    }
}
