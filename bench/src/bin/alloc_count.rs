//! Heap allocations per HTTP/1.1 exchange on the agent's path, counted (not timed), so the
//! number is the same on a loaded machine and a quiet one.
//!
//! Drives the engine as the agent does in `bench/ab.sh` (L3/L4 records for control packets
//! only, spans built for both ends) over an h2load-against-nginx-like keep-alive workload
//! generated in memory, then does what the agent's pipeline does with each record
//! (observer/src/agent/pipeline.rs): attributes every flow to its local end and its peer (both
//! ends are local processes in ab.sh), remembers the owners of each exchange's ends for its
//! span, keeps the spans of both owned ends, and stores flows in a ring of 4095 so each new
//! flow evicts (frees) an old one. A counting global allocator counts allocations (reallocs
//! included) and frees in each of those steps.
//!
//! Usage: alloc-count [EXCHANGES=20000]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use flows::engine::{Engine, EngineConfig, L4Records};
use flows::packet::{CaptureMeta, Direction, LinkType};
use flows::record::{Flow, ProcessInfo, Record, Span};
use flows::roles::{spans_for_owners, EndOwners};
use flows::synth::{SynthFrame, TcpConversation};
use flows::trace::SpanId;

/// The system allocator, counting calls.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static FREES: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call unchanged to the system allocator; only counts them.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        FREES.fetch_add(1, Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(new_size as u64, Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations, frees and bytes allocated so far.
fn counts() -> [u64; 3] {
    [
        ALLOCS.load(Relaxed),
        FREES.load(Relaxed),
        BYTES.load(Relaxed),
    ]
}

/// Connections of the workload, as `bench/ab.sh`'s rate phase (h2load --h1, 10 clients).
const CONNECTIONS: u16 = 10;
/// Flows the agent's store keeps (observer's ring).
const RING: usize = 4095;

/// One keep-alive connection of h2load (`--h1`) fetching nginx's 1 KiB index.html.
fn connection(port: u16, exchanges: usize, start_ns: u64) -> Vec<SynthFrame> {
    let client = std::net::SocketAddr::new([198, 18, 0, 2].into(), port);
    let server = "198.18.0.1:80".parse().expect("valid address");
    let mut c = TcpConversation::new(client, server, 1000 + u32::from(port), 5000, start_ns);
    c.handshake();
    let body = vec![b'x'; 1024];
    for _ in 0..exchanges {
        let req = "GET /index.html HTTP/1.1\r\nHost: 198.18.0.1\r\nUser-Agent: h2load nghttp2/1.52.0\r\nAccept: */*\r\n\r\n";
        c.client_send(req.as_bytes(), 1448);
        let mut resp = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 30 Nov 2026 15:00:00 GMT\r\nContent-Type: text/html\r\nContent-Length: 1024\r\nLast-Modified: Mon, 30 Nov 2026 14:00:00 GMT\r\nConnection: keep-alive\r\nETag: \"6763c2a0-400\"\r\nAccept-Ranges: bytes\r\n\r\n".to_vec();
        resp.extend_from_slice(&body);
        c.server_send(&resp, 1448);
    }
    c.close();
    c.into_frames()
}

/// The agent's pipeline in miniature: what it does with each record, allocation for
/// allocation (owners come from a cache of shared process records).
struct Agent {
    nginx: ProcessInfo,
    h2load: ProcessInfo,
    span_owner: HashMap<SpanId, EndOwners>,
    store: VecDeque<Flow>,
}

impl Agent {
    /// The owner of the socket at `port` of a flow: nginx listens on 80.
    fn owner(&self, port: u16) -> ProcessInfo {
        if port == 80 {
            self.nginx.clone()
        } else {
            self.h2load.clone()
        }
    }

    /// Attributes a flow (its local end and its peer), remembers its exchange's owners and
    /// stores it, evicting the oldest.
    fn flow(&mut self, mut f: Flow) {
        let Some((sp, dp)) = f.l4.ports() else {
            return;
        };
        let (local, remote) = match f.traffic_direction {
            Direction::Ingress => (dp, sp),
            _ => (sp, dp),
        };
        let (mine, peer) = (Some(self.owner(local)), Some(self.owner(remote)));
        if let (Some(tc), Some(reply), true) = (f.trace_context, f.is_reply, f.l7.is_some()) {
            let ends = EndOwners::of_flow(f.traffic_direction, reply, &mine, &peer);
            match self.span_owner.get_mut(&tc.span_id) {
                Some(known) => known.fill_from(ends),
                None => {
                    self.span_owner.insert(tc.span_id, ends);
                }
            }
        }
        (f.process, f.peer_process) = (mine, peer);
        if self.store.len() == RING {
            self.store.pop_front();
        }
        self.store.push_back(f);
    }

    /// Keeps the spans of the exchange's owned ends (both, here) and drops them, as an
    /// exporter would after turning them into metrics.
    fn span(&mut self, span: Box<Span>) -> usize {
        let owners = self.span_owner.remove(&span.span_id).unwrap_or_default();
        spans_for_owners(span, owners).count()
    }
}

/// Per-step counts over the measured exchanges.
#[derive(Default)]
struct Tally {
    engine: [u64; 3],
    flows: [u64; 3],
    spans: [u64; 3],
}

fn add(into: &mut [u64; 3], before: [u64; 3]) {
    let now = counts();
    for i in 0..3 {
        into[i] += now[i] - before[i];
    }
}

fn main() {
    let exchanges: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("EXCHANGES is a number"))
        .unwrap_or(20_000);
    let per_conn = exchanges / usize::from(CONNECTIONS);
    let mut frames: Vec<SynthFrame> = (0..CONNECTIONS)
        .flat_map(|i| {
            connection(
                40_000 + i,
                per_conn,
                1_700_000_000_000_000_000 + u64::from(i),
            )
        })
        .collect();
    frames.sort_by_key(|f| f.ts_ns);
    let owner = |pid: u32, comm: &str| ProcessInfo {
        pid,
        tid: Some(pid),
        comm: Some(comm.into()),
        cgroup_id: Some(1234),
        ..ProcessInfo::default()
    };
    let mut agent = Agent {
        nginx: owner(100, "nginx"),
        h2load: owner(200, "h2load"),
        span_owner: HashMap::new(),
        store: VecDeque::with_capacity(RING),
    };
    let mut engine = Engine::new(EngineConfig {
        l4_records: L4Records::ControlOnly,
        spans: true,
        span_both_ends: true,
        ..EngineConfig::default()
    });
    // The first half warms up (fills the store ring, grows the tables); the second is counted.
    let warm = frames.len() / 2;
    let mut tally = Tally::default();
    let (mut l7_flows, mut spans_kept, mut measured_flows) = (0u64, 0u64, 0u64);
    // Reused, like the agent's batch: its growth is not the engine's.
    let mut records = Vec::with_capacity(64);
    for (i, f) in frames.iter().enumerate() {
        let measuring = i >= warm;
        let meta = CaptureMeta {
            ts_ns: f.ts_ns,
            direction: f.direction,
            ifindex: 2,
            ..CaptureMeta::default()
        };
        let before = counts();
        let _ = engine.handle_frame(f.ts_ns, LinkType::Ethernet, &f.data, meta);
        while let Some(r) = engine.poll_record() {
            records.push(r);
        }
        if measuring {
            add(&mut tally.engine, before);
        }
        for r in records.drain(..) {
            let before = counts();
            let is_flow = matches!(r, Record::Flow(_));
            match r {
                Record::Flow(f) => {
                    if measuring {
                        measured_flows += 1;
                        l7_flows += u64::from(f.l7.is_some());
                    }
                    agent.flow(*f);
                }
                Record::Span(s) => {
                    let n = agent.span(s);
                    if measuring {
                        spans_kept += n as u64;
                    }
                }
            }
            if measuring {
                add(
                    if is_flow {
                        &mut tally.flows
                    } else {
                        &mut tally.spans
                    },
                    before,
                );
            }
        }
    }
    let n = (l7_flows / 2).max(1) as f64;
    println!(
        "exchanges measured: {} ({} flows, {} L7; {} spans kept)",
        l7_flows / 2,
        measured_flows,
        l7_flows,
        spans_kept
    );
    println!("per exchange        allocs    frees    bytes");
    let mut total = [0u64; 3];
    for (name, c) in [
        ("engine (decode, records, spans)", tally.engine),
        ("agent: flows (owners, store)", tally.flows),
        ("agent: spans (owners, drop)", tally.spans),
    ] {
        for i in 0..3 {
            total[i] += c[i];
        }
        println!(
            "{name:<34} {:>6.2} {:>8.2} {:>8.0}",
            c[0] as f64 / n,
            c[1] as f64 / n,
            c[2] as f64 / n
        );
    }
    println!(
        "{:<34} {:>6.2} {:>8.2} {:>8.0}",
        "total",
        total[0] as f64 / n,
        total[1] as f64 / n,
        total[2] as f64 / n
    );
}
