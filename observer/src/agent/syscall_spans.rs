//! Syscall spans: what a server thread did in the kernel while it served a request, as child
//! spans of the request's SERVER span, a latency breakdown on that span, and the outgoing
//! calls made during it as its children.
//!
//! Input: the finished syscalls of traced processes ([`SyscallEvent`], from
//! bpf/syscalls.bpf.c), kept per thread for [`SyscallSpanConfig::window_ns`]. Nothing here
//! does IO; the pipeline feeds events and spans in and emits what comes out.
//!
//! **Which thread served a request.** A SERVER span names its client's address and port
//! (`client.address`/`client.port`); the server's socket is the one whose remote end that
//! is. The request was read by the first read-type syscall on that socket that returned after
//! the request's first byte was captured (`R`), and answered by the first write-type syscall
//! on it after that (`W`). The thread of `R` served it; its syscalls between `R` and `W`
//! (other than on the request's own socket) are the request's children. A thread-per-request
//! server (Python's ThreadingHTTPServer, Java, Apache prefork, Go with one goroutine on one
//! thread) gets exact children; an event-loop server (nginx) that also served other clients
//! of the same port in between gets them too, and the span says so
//! (`flowscope.syscalls.approximate`).
//!
//! **Latency breakdown** (span attributes, ns, that add up to the span's duration; and the
//! same points as span events, [`events`](mod@events)):
//! `flowscope.latency.request_in_ns` (first request byte on the wire → the server's read
//! returned: the network and the socket queue), `flowscope.latency.server_ns` (→ the
//! response write began: the server's own time) and `flowscope.latency.response_out_ns` (→ the
//! last response byte on the wire).
//!
//! **Outgoing calls.** A CLIENT span of a traced process is held ([`SyscallSpans::hold`])
//! until the SERVER span of the request its thread was serving when it wrote the call is
//! complete; the call then joins that request's trace as its child (W3C Trace Context's
//! parent-id semantics: the caller's span), unless its own request carried a `traceparent`
//! (the application propagated the context itself). Calls not claimed within
//! [`SyscallSpanConfig::hold_ns`] go out as they were.
//!
//! Bounded: at most [`SyscallSpanConfig::max_children`] child spans per request, the rest
//! folded into per-syscall counts and time on the SERVER span; per thread at most
//! [`SyscallSpanConfig::max_calls_per_thread`] calls, at most
//! [`SyscallSpanConfig::max_threads`] threads, at most [`MAX_HELD`] held call groups.

// Spans come boxed from the engine and go boxed to the exporter: keep them boxed in between
// rather than move each span's ~300 bytes in and out of a Vec<Span>.
#![allow(clippy::vec_box)]

use std::{
    borrow::Cow,
    collections::{HashMap, HashSet, VecDeque},
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use ebpf_kprobe::{
    syscalls::{FdTarget, Syscall, SyscallEvent},
    SocketTuple,
};
use flows::{
    record::{attr, AttributeValue, Attributes, Span, SpanEvent, SpanKind, SpanStatus, StatusCode},
    trace::IdGenerator,
};

/// Limits and windows of [`SyscallSpans`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyscallSpanConfig {
    /// Most child spans per request; the rest are folded into counts on the SERVER span.
    pub max_children: usize,
    /// How long a thread's syscalls are kept (ns): longer than the slowest request to explain.
    pub window_ns: u64,
    /// Most syscalls kept per thread.
    pub max_calls_per_thread: usize,
    /// Most threads followed.
    pub max_threads: usize,
    /// How long a traced process's CLIENT span waits for the request it was made for (ns).
    pub hold_ns: u64,
    /// How long a traced process's SERVER span waits before it is completed (ns): the
    /// response's packets can be read from the capture ring before the write that sent them
    /// has returned and its record been read from the syscall ring.
    pub settle_ns: u64,
}

impl Default for SyscallSpanConfig {
    fn default() -> Self {
        Self {
            max_children: 32,
            window_ns: 30_000_000_000,
            max_calls_per_thread: 4096,
            max_threads: 4096,
            hold_ns: 5_000_000_000,
            settle_ns: 100_000_000,
        }
    }
}

/// Most CLIENT span groups held at once; beyond it they go out at once (counted).
pub const MAX_HELD: usize = 4096;

/// Span attribute names (flowscope's own, beside OTel's `file.path`, `thread.id`...).
pub mod keys {
    /// The syscall's return value (bytes, an fd, or -errno).
    pub const RETURN: &str = "flowscope.syscall.return";
    /// The fd the syscall worked on.
    pub const FD: &str = "flowscope.syscall.fd";
    /// Bytes read or written.
    pub const BYTES: &str = "flowscope.syscall.bytes";
    /// OTel general semconv: file path.
    pub const FILE_PATH: &str = "file.path";
    /// OTel general semconv: thread id.
    pub const THREAD_ID: &str = "thread.id";
    /// On a SERVER span: its syscalls were taken from a thread that also served other
    /// clients of the same port in between (an event loop); they may include their work.
    pub const APPROXIMATE: &str = "flowscope.syscalls.approximate";
    /// On a SERVER span: syscalls made while serving it, all of them.
    pub const COUNT: &str = "flowscope.syscalls.count";
    /// On a SERVER span: their total time, ns.
    pub const DURATION: &str = "flowscope.syscalls.duration_ns";
    /// Network and socket queue: first request byte captured → the server's read returned, ns.
    pub const REQUEST_IN: &str = "flowscope.latency.request_in_ns";
    /// The server's time: read returned → response write began, ns.
    pub const SERVER: &str = "flowscope.latency.server_ns";
    /// Response write began → last response byte captured, ns.
    pub const RESPONSE_OUT: &str = "flowscope.latency.response_out_ns";
}

/// Span event names of the latency breakdown (on the SERVER span, in this order).
pub mod events {
    /// The request's first byte captured on the wire.
    pub const REQUEST_FIRST_BYTE: &str = "request.first_byte.wire";
    /// The server's read of the request returned.
    pub const REQUEST_READ: &str = "request.read";
    /// The server began writing the response.
    pub const RESPONSE_WRITE: &str = "response.write";
    /// The response's last byte captured on the wire.
    pub const RESPONSE_LAST_BYTE: &str = "response.last_byte.wire";
}

/// What was lost or left out, for `flowscope status`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyscallSpanCounters {
    /// Child spans made.
    pub children: u64,
    /// Syscalls folded into counts (over `max_children`).
    pub folded: u64,
    /// SERVER spans of traced processes with no read of their request found.
    pub requests_unmatched: u64,
    /// SERVER spans given children or a breakdown.
    pub requests_matched: u64,
    /// CLIENT spans joined to the request they were made for.
    pub calls_parented: u64,
    /// Held CLIENT spans no request claimed in time.
    pub calls_unclaimed: u64,
    /// Syscalls forgotten because a thread or the thread table was full.
    pub calls_evicted: u64,
}

impl SyscallSpanCounters {
    /// `(name, value)` pairs for `flowscope status` and /metrics.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
        [
            ("syscall_spans_children", self.children),
            ("syscall_spans_folded", self.folded),
            ("syscall_spans_requests_matched", self.requests_matched),
            ("syscall_spans_requests_unmatched", self.requests_unmatched),
            ("syscall_spans_calls_parented", self.calls_parented),
            ("syscall_spans_calls_unclaimed", self.calls_unclaimed),
            ("syscall_spans_calls_evicted", self.calls_evicted),
        ]
        .into_iter()
    }
}

/// What a syscall worked on.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    /// open/openat's path.
    Opened(Arc<str>),
    /// A file (its path when this process opened it while traced).
    File(Option<Arc<str>>),
    /// A TCP/UDP socket.
    Socket(SocketTuple),
    /// Another kind of socket, or nothing readable.
    Other,
}

/// One finished syscall, wall-clock times.
#[derive(Clone, Debug)]
struct Call {
    syscall: Syscall,
    enter_ns: u64,
    exit_ns: u64,
    ret: i64,
    fd: Option<i32>,
    target: Target,
}

impl Call {
    fn on_socket(&self, pred: impl Fn(&SocketTuple) -> bool) -> bool {
        matches!(&self.target, Target::Socket(t) if pred(t))
    }
}

/// A socket syscall in the indices, for finding a request's read and write without scanning
/// every thread.
#[derive(Clone, Copy, Debug)]
struct SockCall {
    tid: u32,
    enter_ns: u64,
    exit_ns: u64,
    /// Read (with bytes), write, or connect.
    io: Io,
    /// The socket's local port.
    local_port: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Io {
    Read,
    Write,
    Connect,
}

/// Most socket syscalls indexed per socket end; the oldest go first.
const MAX_PER_SOCKET: usize = 256;
/// Most socket ends indexed.
const MAX_SOCKETS: usize = 65_536;

/// Socket syscalls by one end of their socket.
#[derive(Debug, Default)]
struct SocketIndex(HashMap<SocketAddr, VecDeque<SockCall>>);

impl SocketIndex {
    /// Adds `c` under `end`; false when the index is full.
    fn add(&mut self, end: SocketAddr, c: SockCall) -> bool {
        if !self.0.contains_key(&end) && self.0.len() >= MAX_SOCKETS {
            return false;
        }
        let q = self.0.entry(end).or_default();
        if q.len() >= MAX_PER_SOCKET {
            q.pop_front();
        }
        q.push_back(c);
        true
    }

    fn get(&self, end: &SocketAddr) -> impl Iterator<Item = &SockCall> {
        self.0.get(end).into_iter().flatten()
    }

    fn expire(&mut self, horizon: u64) {
        self.0.retain(|_, q| {
            while q.front().is_some_and(|c| c.exit_ns < horizon) {
                q.pop_front();
            }
            !q.is_empty()
        });
    }
}

#[derive(Debug, Default)]
struct Thread {
    pid: u32,
    calls: VecDeque<Call>,
}

/// A group of spans from one exchange (a CLIENT span of a traced process, and the SERVER
/// span of its callee when that is local too), waiting for the request it was made for.
#[derive(Debug)]
struct Held {
    until_ns: u64,
    tid: u32,
    /// When the thread began writing the call.
    at_ns: u64,
    spans: Vec<Box<Span>>,
}

/// Per-thread syscall history and the spans made from it. See the module docs.
#[derive(Debug)]
pub struct SyscallSpans {
    cfg: SyscallSpanConfig,
    threads: HashMap<u32, Thread>,
    /// `(pid, fd)` → path, from open/openat returns seen (forgotten at close).
    paths: HashMap<(u32, i32), Arc<str>>,
    held: VecDeque<Held>,
    /// Span groups with a traced SERVER span, waiting out `settle_ns` (until, spans).
    settling: VecDeque<(u64, Vec<Box<Span>>)>,
    /// Processes with syscalls in the history.
    traced_pids: HashSet<u32>,
    /// Socket syscalls by their socket's remote end (a server's request socket: the client).
    by_remote: SocketIndex,
    /// ... and by its local end (a client's socket).
    by_local: SocketIndex,
    ids: IdGenerator,
    counters: SyscallSpanCounters,
}

/// Most `(pid, fd)` paths remembered.
const MAX_PATHS: usize = 65_536;

/// The client end a span names (`client.address`, `client.port`).
fn client_end(span: &Span) -> Option<SocketAddr> {
    let ip: IpAddr = match span.attributes.get(attr::CLIENT_ADDRESS)? {
        AttributeValue::String(s) => s.parse().ok()?,
        _ => return None,
    };
    let port = match span.attributes.get(attr::CLIENT_PORT)? {
        AttributeValue::Int(p) => u16::try_from(*p).ok()?,
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The conventional name of a Linux errno, for `error.type`.
fn errno_name(errno: i64) -> Cow<'static, str> {
    let name = match errno {
        1 => "EPERM",
        2 => "ENOENT",
        4 => "EINTR",
        5 => "EIO",
        9 => "EBADF",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        17 => "EEXIST",
        20 => "ENOTDIR",
        21 => "EISDIR",
        22 => "EINVAL",
        24 => "EMFILE",
        28 => "ENOSPC",
        32 => "EPIPE",
        104 => "ECONNRESET",
        110 => "ETIMEDOUT",
        111 => "ECONNREFUSED",
        113 => "EHOSTUNREACH",
        115 => "EINPROGRESS",
        _ => return Cow::Owned(format!("errno {errno}")),
    };
    Cow::Borrowed(name)
}

impl SyscallSpans {
    /// An empty history; span ids from `seed`.
    pub fn new(cfg: SyscallSpanConfig, seed: u64) -> Self {
        Self {
            cfg,
            threads: HashMap::new(),
            paths: HashMap::new(),
            held: VecDeque::new(),
            settling: VecDeque::new(),
            traced_pids: HashSet::new(),
            by_remote: SocketIndex::default(),
            by_local: SocketIndex::default(),
            ids: IdGenerator::new(seed),
            counters: SyscallSpanCounters::default(),
        }
    }

    /// What was made, lost or left out so far.
    pub fn counters(&self) -> &SyscallSpanCounters {
        &self.counters
    }

    /// Whether syscalls of process `pid` are being followed.
    pub fn traces(&self, pid: u32) -> bool {
        self.traced_pids.contains(&pid)
    }

    /// Takes one finished syscall; `wall` converts its CLOCK_MONOTONIC stamps to the wall
    /// clock the captured packets are stamped with.
    pub fn on_event(&mut self, ev: &SyscallEvent, wall: impl Fn(u64) -> u64) {
        let Some(syscall) = ev.syscall else { return };
        let fd = ev.fd();
        match syscall {
            Syscall::Close => {
                if let Some(fd) = fd {
                    self.paths.remove(&(ev.pid, fd));
                }
                return;
            }
            Syscall::Open | Syscall::Openat if ev.ret >= 0 => {
                if let Some(p) = &ev.path {
                    if self.paths.len() >= MAX_PATHS {
                        self.paths.clear();
                    }
                    self.paths
                        .insert((ev.pid, ev.ret as i32), Arc::from(p.as_str()));
                }
            }
            _ => {}
        }
        let target = match (&ev.fd, &ev.path) {
            (_, Some(p)) => Target::Opened(Arc::from(p.as_str())),
            (FdTarget::Socket(t), _) => Target::Socket(*t),
            (FdTarget::File, _) => {
                Target::File(fd.and_then(|fd| self.paths.get(&(ev.pid, fd)).cloned()))
            }
            _ => Target::Other,
        };
        let call = Call {
            syscall,
            enter_ns: wall(ev.enter_ns),
            exit_ns: wall(ev.exit_ns),
            ret: ev.ret,
            fd,
            target,
        };
        if !self.threads.contains_key(&ev.tid) && self.threads.len() >= self.cfg.max_threads {
            // Forget the thread that has been quiet longest.
            if let Some(quiet) = self
                .threads
                .iter()
                .min_by_key(|(_, t)| t.calls.back().map_or(0, |c| c.exit_ns))
                .map(|(tid, _)| *tid)
            {
                let t = self.threads.remove(&quiet).unwrap_or_default();
                self.counters.calls_evicted += t.calls.len() as u64;
            }
        }
        if let Target::Socket(t) = &call.target {
            let io = if call.syscall.reads() && call.ret > 0 {
                Some(Io::Read)
            } else if call.syscall.writes() {
                Some(Io::Write)
            } else if call.syscall == Syscall::Connect {
                Some(Io::Connect)
            } else {
                None
            };
            if let Some(io) = io {
                let c = SockCall {
                    tid: ev.tid,
                    enter_ns: call.enter_ns,
                    exit_ns: call.exit_ns,
                    io,
                    local_port: t.local.port(),
                };
                if !(self.by_remote.add(t.remote, c) & self.by_local.add(t.local, c)) {
                    self.counters.calls_evicted += 1;
                }
            }
        }
        self.traced_pids.insert(ev.pid);
        let t = self.threads.entry(ev.tid).or_default();
        t.pid = ev.pid;
        if t.calls.len() >= self.cfg.max_calls_per_thread {
            t.calls.pop_front();
            self.counters.calls_evicted += 1;
        }
        t.calls.push_back(call);
    }

    /// Forgets syscalls older than the window, before wall time `now_ns`.
    pub fn expire(&mut self, now_ns: u64) {
        let horizon = now_ns.saturating_sub(self.cfg.window_ns);
        self.by_remote.expire(horizon);
        self.by_local.expire(horizon);
        self.threads.retain(|_, t| {
            while t.calls.front().is_some_and(|c| c.exit_ns < horizon) {
                t.calls.pop_front();
            }
            !t.calls.is_empty()
        });
        self.traced_pids = self.threads.values().map(|t| t.pid).collect();
    }

    /// Held CLIENT span groups whose time is up, to emit as they are.
    pub fn unclaimed(&mut self, now_ns: u64) -> Vec<Box<Span>> {
        let mut out = Vec::new();
        while self.held.front().is_some_and(|h| h.until_ns <= now_ns) {
            let h = self.held.pop_front().expect("checked");
            self.counters.calls_unclaimed += 1;
            out.extend(h.spans);
        }
        out
    }

    /// The spans of one exchange (from [`flows::roles::spans_for_owners`]) to emit now:
    /// none while a SERVER span of a traced process among them settles (see
    /// [`SyscallSpanConfig::settle_ns`]; [`SyscallSpans::settled`] gives them back), else
    /// what [`SyscallSpans::hold`] leaves.
    pub fn admit(&mut self, spans: Vec<Box<Span>>, now_ns: u64) -> Vec<Box<Span>> {
        let traced_server = spans.iter().any(|s| {
            s.kind == SpanKind::Server && s.process.as_ref().is_some_and(|p| self.traces(p.pid))
        });
        if traced_server && self.settling.len() < MAX_HELD {
            self.settling
                .push_back((now_ns + self.cfg.settle_ns, spans));
            return Vec::new();
        }
        self.hold(spans, now_ns)
    }

    /// The settling span groups whose time is up, through [`SyscallSpans::hold`]: complete
    /// their SERVER spans ([`SyscallSpans::complete`]) as they are emitted.
    pub fn settled(&mut self, now_ns: u64) -> Vec<Box<Span>> {
        let mut out = Vec::new();
        while self.settling.front().is_some_and(|(t, _)| *t <= now_ns) {
            let (_, spans) = self.settling.pop_front().expect("checked");
            out.extend(self.hold(spans, now_ns));
        }
        out
    }

    /// Everything still held (at exit).
    pub fn release_all(&mut self) -> Vec<Box<Span>> {
        let mut out = self.settled(u64::MAX);
        let n = self.held.len() as u64;
        self.counters.calls_unclaimed += n;
        out.extend(self.held.drain(..).flat_map(|h| h.spans));
        out
    }

    /// The spans of one exchange (from [`flows::roles::spans_for_owners`]): returned to go
    /// out now, or held (empty result) when one is a CLIENT span written by a traced thread,
    /// to join the request that thread was serving.
    pub fn hold(&mut self, spans: Vec<Box<Span>>, now_ns: u64) -> Vec<Box<Span>> {
        let writer = spans
            .iter()
            .find(|s| s.kind == SpanKind::Client && s.parent_span_id.is_none())
            .and_then(|s| {
                let end = client_end(s)?;
                self.writer_of(end, s.start_time_ns, s.end_time_ns)
            });
        let Some((tid, at_ns)) = writer else {
            return spans;
        };
        if self.held.len() >= MAX_HELD {
            self.counters.calls_unclaimed += 1;
            return spans;
        }
        self.held.push_back(Held {
            until_ns: now_ns + self.cfg.hold_ns,
            tid,
            at_ns,
            spans,
        });
        Vec::new()
    }

    /// `(thread, write start)` of the write that sent a request from socket `local`, made at
    /// or before the request's first captured byte (`start`), else the first one before `end`.
    fn writer_of(&self, local: SocketAddr, start: u64, end: u64) -> Option<(u32, u64)> {
        let mut best: Option<(u32, u64)> = None;
        for c in self
            .by_local
            .get(&local)
            .filter(|c| matches!(c.io, Io::Write | Io::Connect) && c.enter_ns <= end)
        {
            let better = match best {
                None => true,
                // Latest at or before the start; else the earliest after it.
                Some((_, b)) if b <= start => c.enter_ns <= start && c.enter_ns > b,
                Some((_, b)) => c.enter_ns < b,
            };
            if better {
                best = Some((c.tid, c.enter_ns));
            }
        }
        best
    }

    /// For a finished SERVER span: sets its latency breakdown and syscall totals, and returns
    /// its syscall child spans followed by the held calls made for it (now its children).
    /// Other spans, and requests no traced thread read, get nothing.
    pub fn complete(&mut self, span: &mut Span) -> Vec<Box<Span>> {
        if span.kind != SpanKind::Server {
            return Vec::new();
        }
        let Some(client) = client_end(span) else {
            return Vec::new();
        };
        let is_request_socket = |t: &SocketTuple| t.remote == client;
        // R: the first read of the request, returning after its first byte was captured.
        let read = self
            .by_remote
            .get(&client)
            .filter(|c| {
                c.io == Io::Read && c.exit_ns >= span.start_time_ns && c.exit_ns <= span.end_time_ns
            })
            .min_by_key(|c| c.exit_ns)
            .copied();
        let Some(r) = read else {
            if span.process.as_ref().is_some_and(|p| self.traces(p.pid)) {
                self.counters.requests_unmatched += 1;
            }
            return Vec::new();
        };
        let (tid, r_exit, server_port) = (r.tid, r.exit_ns, r.local_port);
        // W: the first write of the response after it.
        let write_enter = self
            .by_remote
            .get(&client)
            .filter(|c| c.io == Io::Write && c.enter_ns >= r_exit && c.enter_ns <= span.end_time_ns)
            .map(|c| c.enter_ns)
            .min();
        let until = write_enter.unwrap_or(span.end_time_ns);
        let Some(thread) = self.threads.get(&tid) else {
            // The thread was forgotten (table full) after its socket call was indexed.
            self.counters.requests_unmatched += 1;
            return Vec::new();
        };
        let during: Vec<Call> = thread
            .calls
            .iter()
            .filter(|c| c.enter_ns >= r_exit && c.exit_ns <= until)
            .filter(|c| !c.on_socket(is_request_socket))
            .cloned()
            .collect();
        let approximate = during.iter().any(|c| {
            (c.syscall.reads() || c.syscall.writes())
                && c.on_socket(|t| t.local.port() == server_port && t.remote != client)
        });
        self.counters.requests_matched += 1;

        let mut out = Vec::new();
        let mut folded: Vec<(Syscall, u64, u64)> = Vec::new();
        let mut total_ns = 0;
        for c in &during {
            let ns = c.exit_ns.saturating_sub(c.enter_ns);
            total_ns += ns;
            if out.len() < self.cfg.max_children {
                out.push(Box::new(child(&mut self.ids, span, tid, c)));
                self.counters.children += 1;
            } else {
                self.counters.folded += 1;
                match folded.iter_mut().find(|f| f.0 == c.syscall) {
                    Some(f) => {
                        f.1 += 1;
                        f.2 += ns;
                    }
                    None => folded.push((c.syscall, 1, ns)),
                }
            }
        }
        let a = &mut span.attributes;
        a.insert(keys::THREAD_ID, i64::from(tid).into());
        a.insert(keys::COUNT, (during.len() as i64).into());
        a.insert(keys::DURATION, (total_ns as i64).into());
        if approximate {
            a.insert(keys::APPROXIMATE, AttributeValue::Bool(true));
        }
        for (s, n, ns) in folded {
            a.insert(
                format!("flowscope.syscalls.folded.{}.count", s.name()),
                (n as i64).into(),
            );
            a.insert(
                format!("flowscope.syscalls.folded.{}.duration_ns", s.name()),
                (ns as i64).into(),
            );
        }
        let ns = |d: u64| AttributeValue::Int(d as i64);
        a.insert(
            keys::REQUEST_IN,
            ns(r_exit.saturating_sub(span.start_time_ns)),
        );
        if let Some(w) = write_enter {
            a.insert(keys::SERVER, ns(w - r_exit));
            a.insert(keys::RESPONSE_OUT, ns(span.end_time_ns.saturating_sub(w)));
        }
        // The same points as span events, for trace viewers that draw them on the span.
        let at = |name: &'static str, time_ns: u64| SpanEvent {
            name: Cow::Borrowed(name),
            time_ns,
        };
        span.events
            .push(at(events::REQUEST_FIRST_BYTE, span.start_time_ns));
        span.events.push(at(events::REQUEST_READ, r_exit));
        if let Some(w) = write_enter {
            span.events.push(at(events::RESPONSE_WRITE, w));
        }
        span.events
            .push(at(events::RESPONSE_LAST_BYTE, span.end_time_ns));
        // Calls this thread made while serving the request join its trace.
        let (trace_id, parent) = (span.trace_id, span.span_id);
        let mut i = 0;
        while i < self.held.len() {
            let h = &self.held[i];
            if h.tid == tid && h.at_ns >= r_exit && h.at_ns <= until {
                let h = self.held.remove(i).expect("in range");
                self.counters.calls_parented += 1;
                for mut s in h.spans {
                    s.trace_id = trace_id;
                    if s.kind == SpanKind::Client && s.parent_span_id.is_none() {
                        s.parent_span_id = Some(parent);
                    }
                    out.push(s);
                }
            } else {
                i += 1;
            }
        }
        out
    }
}

/// The INTERNAL span of syscall `c`, made by thread `tid` while serving `parent`.
fn child(ids: &mut IdGenerator, parent: &Span, tid: u32, c: &Call) -> Span {
    let mut a = Attributes::new();
    a.insert(keys::THREAD_ID, i64::from(tid).into());
    a.insert(keys::RETURN, c.ret.into());
    if let Some(fd) = c.fd {
        a.insert(keys::FD, i64::from(fd).into());
    }
    if (c.syscall.reads() || c.syscall.writes()) && c.ret >= 0 {
        a.insert(keys::BYTES, c.ret.into());
    }
    match &c.target {
        Target::Opened(p) | Target::File(Some(p)) => {
            a.insert(keys::FILE_PATH, AttributeValue::from(&**p));
        }
        Target::Socket(t) => {
            a.insert(
                attr::NETWORK_PEER_ADDRESS,
                AttributeValue::from(t.remote.ip().to_string()),
            );
            a.insert(attr::NETWORK_PEER_PORT, i64::from(t.remote.port()).into());
        }
        Target::File(None) | Target::Other => {}
    }
    let status = if c.ret < 0 {
        let errno = -c.ret;
        a.insert(
            attr::ERROR_TYPE,
            AttributeValue::String(errno_name(errno).as_ref().into()),
        );
        SpanStatus {
            code: StatusCode::Error,
            message: Some(std::io::Error::from_raw_os_error(errno as i32).to_string()),
        }
    } else {
        SpanStatus {
            code: StatusCode::Unset,
            message: None,
        }
    };
    Span {
        trace_id: parent.trace_id,
        span_id: ids.span_id(),
        parent_span_id: Some(parent.span_id),
        trace_state: None,
        name: c.syscall.name().into(),
        kind: SpanKind::Internal,
        start_time_ns: c.enter_ns,
        end_time_ns: c.exit_ns,
        status,
        attributes: a,
        socket_cookie: None,
        ifindex: 0,
        process: parent.process.clone(),
        counterpart: None,
        events: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
