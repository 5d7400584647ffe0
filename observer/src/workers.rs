//! The flow engine on several threads: [`flows::shard`] routes each frame to the worker that
//! owns its connection, one [`Engine`] per worker thread decodes, and the records come back
//! merged into capture order. `flowscope replay --workers N` and `flowscope agent --workers N`
//! drive it through [`FlowEngine`], the calls of one engine, so the rest of the code does not
//! care how many workers there are.
//!
//! The calling thread decodes each frame's headers to pick its worker (the engine's own
//! decoder, so the choice agrees with the engine's flow key), copies the frame into that
//! worker's batch, and every [`ROUND_ITEMS`] frames (or [`ROUND_BYTES`], or at [`FlowEngine::sync`])
//! hands a batch to every worker at once, each stamped with how far dispatch has got: that
//! stamp is the worker's watermark for the merge when its answer comes back. At most
//! [`ROUNDS_IN_FLIGHT`] rounds per worker are outstanding, so a slow worker stalls dispatch
//! (and, in the agent, fills the kernel ring, whose losses are counted) rather than letting
//! memory grow; the merge buffers no more than those rounds' records.

use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::thread::JoinHandle;

use flows::counters::Counters;
use flows::engine::{CaptureHint, Engine, EngineConfig, PlaintextChunk, TlsBlindSpot};
use flows::key::Endpoint;
use flows::packet::{CaptureMeta, LinkType};
use flows::record::{L7Source, Record};
use flows::shard::{worker_config, Dispatcher, Merger, Route};

/// What the replay and the agent need of a flow engine: one [`Engine`] or [`ShardedEngine`].
pub trait FlowEngine: Send {
    /// [`Engine::handle_frame`]; decode errors are counted, not returned.
    fn handle_frame(&mut self, now_ns: u64, link: LinkType, frame: &[u8], meta: CaptureMeta);
    /// [`Engine::handle_timeout`].
    fn handle_timeout(&mut self, now_ns: u64);
    /// [`Engine::flush`]: when it returns, every record is ready for `poll_record`.
    fn flush(&mut self, now_ns: u64);
    /// [`Engine::poll_record`]: the next record that is ready. With workers, a record is ready
    /// once every worker has handled the frames before it; call [`FlowEngine::sync`] at the
    /// end of a batch of frames so that they start.
    fn poll_record(&mut self) -> Option<Record>;
    /// End of a batch of frames (a ring drain): hands what is queued to the workers.
    fn sync(&mut self) {}
    /// Whether no frame is out at a worker and no record waits in the merge, so a later
    /// [`FlowEngine::poll_record`] has nothing to give until more frames come (one engine:
    /// always).
    fn is_settled(&self) -> bool {
        true
    }
    /// Takes back a record from `poll_record` that the caller is done with. With workers it
    /// is dropped on the worker thread that allocated it: glibc frees a chunk from another
    /// thread through that thread's arena lock, and doing so for every record doubled the CPU
    /// a sharded replay took (BENCHMARKS.md, "Scaling with cores").
    fn recycle(&mut self, record: Record) {
        drop(record);
    }
    /// [`Engine::counters`], summed over the workers (as of their last answers).
    fn counters(&self) -> &Counters;
    /// [`Engine::handle_plaintext`]: with workers, to the worker of the chunk's connection,
    /// in order with that connection's frames.
    fn handle_plaintext(&mut self, now_ns: u64, chunk: &PlaintextChunk<'_>);
    /// [`Engine::take_tls_blind_spots`]; with workers, those of the answers taken so far.
    fn take_tls_blind_spots(&mut self) -> Vec<TlsBlindSpot>;
    /// [`Engine::has_tls_blind_spots`].
    fn has_tls_blind_spots(&self) -> bool;
    /// [`Engine::take_capture_hints`]; with workers, those of the answers taken so far.
    fn take_capture_hints(&mut self) -> Vec<CaptureHint>;
}

impl FlowEngine for Engine {
    fn handle_frame(&mut self, now_ns: u64, link: LinkType, frame: &[u8], meta: CaptureMeta) {
        let _ = Engine::handle_frame(self, now_ns, link, frame, meta);
    }
    fn handle_timeout(&mut self, now_ns: u64) {
        Engine::handle_timeout(self, now_ns);
    }
    fn flush(&mut self, now_ns: u64) {
        Engine::flush(self, now_ns);
    }
    fn poll_record(&mut self) -> Option<Record> {
        Engine::poll_record(self)
    }
    fn counters(&self) -> &Counters {
        Engine::counters(self)
    }
    fn handle_plaintext(&mut self, now_ns: u64, chunk: &PlaintextChunk<'_>) {
        Engine::handle_plaintext(self, now_ns, chunk);
    }
    fn take_tls_blind_spots(&mut self) -> Vec<TlsBlindSpot> {
        Engine::take_tls_blind_spots(self)
    }
    fn has_tls_blind_spots(&self) -> bool {
        Engine::has_tls_blind_spots(self)
    }
    fn take_capture_hints(&mut self) -> Vec<CaptureHint> {
        Engine::take_capture_hints(self)
    }
}

/// One engine for `workers <= 1` (no threads, no copies), else a [`ShardedEngine`].
pub fn new_engine(config: EngineConfig, workers: usize, seed: u64) -> Box<dyn FlowEngine> {
    if workers <= 1 {
        Box::new(Engine::new(config))
    } else {
        Box::new(ShardedEngine::new(config, workers, seed))
    }
}

/// Frames per round (all workers' batches together) before it is handed over.
pub const ROUND_ITEMS: usize = 128;
/// Frame bytes per round before it is handed over.
pub const ROUND_BYTES: usize = 1 << 20;
/// Rounds a worker may have outstanding before dispatch waits for it.
pub const ROUNDS_IN_FLIGHT: usize = 4;

/// Work for a worker, in dispatch order; `seq` numbers the item for the merge.
#[derive(Debug, Clone, Copy)]
enum Item {
    Frame {
        seq: u64,
        now_ns: u64,
        link: LinkType,
        meta: CaptureMeta,
        at: usize,
        len: usize,
    },
    Datagram {
        seq: u64,
        now_ns: u64,
        meta: CaptureMeta,
        at: usize,
        len: usize,
    },
    Timeout {
        seq: u64,
        now_ns: u64,
    },
    /// A [`PlaintextChunk`] whose data is `bytes[at..at + len]`.
    Plaintext {
        seq: u64,
        now_ns: u64,
        chunk: PlaintextItem,
        at: usize,
        len: usize,
    },
    Flush {
        seq: u64,
        now_ns: u64,
    },
}

/// A [`PlaintextChunk`] without its data (which travels in the batch's bytes).
#[derive(Debug, Clone, Copy)]
struct PlaintextItem {
    ts_ns: u64,
    local: Endpoint,
    remote: Endpoint,
    sent: bool,
    missing: u64,
    source: L7Source,
    socket_cookie: Option<u64>,
}

/// One worker's share of a round: items, the bytes of their frames, and the dispatch position
/// the round ends at.
#[derive(Debug, Default)]
struct Batch {
    items: Vec<Item>,
    bytes: Vec<u8>,
    through: u64,
    /// Records of this worker's that the consumer is done with, to drop on the worker.
    dead: Vec<Record>,
    /// An empty vector for the worker's answer (reused, not allocated per batch).
    out: Vec<(u64, Record)>,
}

/// A worker's answer to one batch.
struct Answer {
    worker: usize,
    records: Vec<(u64, Record)>,
    through: u64,
    counters: Counters,
    /// TLS connections that ended without plaintext while handling the batch.
    blind_spots: Vec<TlsBlindSpot>,
    /// Capture hints given while handling the batch.
    capture_hints: Vec<CaptureHint>,
    /// The batch, emptied, for reuse.
    spare: Batch,
}

/// The engine sharded over worker threads; see the module docs.
pub struct ShardedEngine {
    dispatcher: Dispatcher,
    seq: u64,
    round: Vec<Batch>,
    round_items: usize,
    round_bytes: usize,
    inputs: Vec<SyncSender<Batch>>,
    answers: Receiver<Answer>,
    outstanding: Vec<usize>,
    merger: Merger<Record>,
    worker_counters: Vec<Counters>,
    totals: Counters,
    spare: Vec<Batch>,
    threads: Vec<JoinHandle<()>>,
    /// The worker of the record `poll_record` returned last.
    last_from: usize,
    /// The workers' TLS blind spots, until taken.
    blind_spots: Vec<TlsBlindSpot>,
    /// The workers' capture hints, until taken (each connection's in its order: one
    /// connection is on one worker).
    capture_hints: Vec<CaptureHint>,
}

impl ShardedEngine {
    /// `workers` engine threads configured from `config` ([`worker_config`]: caps divided,
    /// own id streams), flows spread by a hash seeded with `seed`.
    pub fn new(config: EngineConfig, workers: usize, seed: u64) -> Self {
        let n = workers.max(1);
        let (answer_tx, answers) = mpsc::channel();
        let mut inputs = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let (tx, rx) = mpsc::sync_channel::<Batch>(ROUNDS_IN_FLIGHT);
            let engine = Engine::new(worker_config(&config, n, i));
            let answer_tx = answer_tx.clone();
            let t = std::thread::Builder::new()
                .name(format!("engine-{i}"))
                .spawn(move || work(i, engine, rx, answer_tx))
                .expect("spawning an engine worker thread");
            inputs.push(tx);
            threads.push(t);
        }
        Self {
            dispatcher: Dispatcher::new(n, &config, seed),
            seq: 0,
            round: (0..n).map(|_| Batch::default()).collect(),
            round_items: 0,
            round_bytes: 0,
            inputs,
            answers,
            outstanding: vec![0; n],
            merger: Merger::new(n),
            worker_counters: vec![Counters::default(); n],
            totals: Counters::default(),
            spare: Vec::new(),
            threads,
            last_from: 0,
            blind_spots: Vec::new(),
            capture_hints: Vec::new(),
        }
    }

    fn push_bytes(&mut self, worker: usize, bytes: &[u8]) -> (usize, usize) {
        let b = &mut self.round[worker].bytes;
        let at = b.len();
        b.extend_from_slice(bytes);
        self.round_bytes += bytes.len();
        (at, bytes.len())
    }

    fn push_item(&mut self, worker: usize, item: Item) {
        self.round[worker].items.push(item);
        self.round_items += 1;
        if self.round_items >= ROUND_ITEMS || self.round_bytes >= ROUND_BYTES {
            self.send_round();
        }
    }

    /// Hands every worker its batch (empty ones too: they carry the watermark).
    fn send_round(&mut self) {
        for w in 0..self.round.len() {
            while self.outstanding[w] >= ROUNDS_IN_FLIGHT {
                let answer = self
                    .answers
                    .recv()
                    .expect("engine workers stopped (one panicked)");
                self.take(answer);
            }
            let fresh = self.spare.pop().unwrap_or_default();
            let mut batch = std::mem::replace(&mut self.round[w], fresh);
            batch.through = self.seq;
            self.inputs[w]
                .send(batch)
                .unwrap_or_else(|_| panic!("engine worker {w} stopped (it panicked)"));
            self.outstanding[w] += 1;
        }
        self.round_items = 0;
        self.round_bytes = 0;
    }

    fn take(&mut self, mut a: Answer) {
        for (seq, r) in a.records.drain(..) {
            self.merger.push(a.worker, seq, r);
        }
        a.spare.out = a.records;
        self.blind_spots.append(&mut a.blind_spots);
        self.capture_hints.append(&mut a.capture_hints);
        self.merger.advance(a.worker, a.through);
        self.outstanding[a.worker] -= 1;
        self.worker_counters[a.worker] = a.counters;
        let mut totals = self.dispatcher.counters().clone();
        for c in &self.worker_counters {
            totals.add(c);
        }
        self.totals = totals;
        if self.spare.len() < 2 * self.round.len() {
            self.spare.push(a.spare);
        }
    }

    /// Takes every answer already there, without waiting.
    fn take_ready(&mut self) {
        loop {
            match self.answers.try_recv() {
                Ok(a) => self.take(a),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => panic!("engine workers stopped"),
            }
        }
    }

    fn broadcast(&mut self, make: impl Fn(u64) -> Item) {
        self.seq += 1;
        let item = make(self.seq);
        for w in 0..self.round.len() {
            self.round[w].items.push(item);
        }
        self.round_items += self.round.len();
    }
}

impl FlowEngine for ShardedEngine {
    fn handle_frame(&mut self, now_ns: u64, link: LinkType, frame: &[u8], meta: CaptureMeta) {
        self.seq += 1;
        let seq = self.seq;
        match self.dispatcher.route(now_ns, link, frame, meta) {
            Route::Frame(w) => {
                let (at, len) = self.push_bytes(w, frame);
                self.push_item(
                    w,
                    Item::Frame {
                        seq,
                        now_ns,
                        link,
                        meta,
                        at,
                        len,
                    },
                );
            }
            Route::Datagram {
                worker,
                datagram,
                meta,
            } => {
                let (at, len) = self.push_bytes(worker, &datagram);
                self.push_item(
                    worker,
                    Item::Datagram {
                        seq,
                        now_ns,
                        meta,
                        at,
                        len,
                    },
                );
            }
            Route::Held => {}
        }
    }

    fn handle_timeout(&mut self, now_ns: u64) {
        if self.dispatcher.due(now_ns) {
            self.broadcast(|seq| Item::Timeout { seq, now_ns });
        }
    }

    fn flush(&mut self, now_ns: u64) {
        self.dispatcher.flush();
        self.broadcast(|seq| Item::Flush { seq, now_ns });
        self.send_round();
        while self.outstanding.iter().any(|&o| o > 0) {
            let a = self
                .answers
                .recv()
                .expect("engine workers stopped (one panicked)");
            self.take(a);
        }
    }

    fn poll_record(&mut self) -> Option<Record> {
        let (w, r) = match self.merger.pop_with_worker() {
            Some(x) => x,
            None => {
                self.take_ready();
                self.merger.pop_with_worker()?
            }
        };
        self.last_from = w;
        Some(r)
    }

    fn recycle(&mut self, record: Record) {
        self.round[self.last_from].dead.push(record);
    }

    fn is_settled(&self) -> bool {
        self.round_items == 0 && self.outstanding.iter().all(|&o| o == 0) && self.merger.is_empty()
    }

    fn sync(&mut self) {
        if self.round_items > 0 {
            self.send_round();
        }
        self.take_ready();
    }

    fn counters(&self) -> &Counters {
        &self.totals
    }

    fn handle_plaintext(&mut self, now_ns: u64, chunk: &PlaintextChunk<'_>) {
        self.seq += 1;
        let seq = self.seq;
        let w = self.dispatcher.route_plaintext(chunk);
        let (at, len) = self.push_bytes(w, chunk.data);
        let chunk = PlaintextItem {
            ts_ns: chunk.ts_ns,
            local: chunk.local,
            remote: chunk.remote,
            sent: chunk.sent,
            missing: chunk.missing,
            source: chunk.source,
            socket_cookie: chunk.socket_cookie,
        };
        self.push_item(
            w,
            Item::Plaintext {
                seq,
                now_ns,
                chunk,
                at,
                len,
            },
        );
    }

    fn take_tls_blind_spots(&mut self) -> Vec<TlsBlindSpot> {
        std::mem::take(&mut self.blind_spots)
    }

    fn has_tls_blind_spots(&self) -> bool {
        !self.blind_spots.is_empty()
    }

    fn take_capture_hints(&mut self) -> Vec<CaptureHint> {
        std::mem::take(&mut self.capture_hints)
    }
}

impl Drop for ShardedEngine {
    fn drop(&mut self) {
        // Closing the inputs ends the workers; they never wait on the answers channel.
        self.inputs.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A worker thread: runs its engine over each batch in order and answers with the records,
/// each tagged with the item that produced it.
fn work(index: usize, mut engine: Engine, batches: Receiver<Batch>, answers: mpsc::Sender<Answer>) {
    while let Ok(mut batch) = batches.recv() {
        // Dropped first, so that this batch's records reuse their memory straight away.
        batch.dead.clear();
        let mut records = std::mem::take(&mut batch.out);
        for item in batch.items.drain(..) {
            let seq = match item {
                Item::Frame {
                    seq,
                    now_ns,
                    link,
                    meta,
                    at,
                    len,
                } => {
                    let _ = engine.handle_frame(now_ns, link, &batch.bytes[at..at + len], meta);
                    seq
                }
                Item::Datagram {
                    seq,
                    now_ns,
                    meta,
                    at,
                    len,
                } => {
                    engine.handle_reassembled(now_ns, &batch.bytes[at..at + len], meta);
                    seq
                }
                Item::Timeout { seq, now_ns } => {
                    engine.handle_timeout(now_ns);
                    seq
                }
                Item::Plaintext {
                    seq,
                    now_ns,
                    chunk: c,
                    at,
                    len,
                } => {
                    let chunk = PlaintextChunk {
                        ts_ns: c.ts_ns,
                        local: c.local,
                        remote: c.remote,
                        sent: c.sent,
                        data: &batch.bytes[at..at + len],
                        missing: c.missing,
                        source: c.source,
                        socket_cookie: c.socket_cookie,
                    };
                    engine.handle_plaintext(now_ns, &chunk);
                    seq
                }
                Item::Flush { seq, now_ns } => {
                    engine.flush(now_ns);
                    seq
                }
            };
            records.extend(std::iter::from_fn(|| engine.poll_record()).map(|r| (seq, r)));
        }
        batch.bytes.clear();
        let answer = Answer {
            worker: index,
            records,
            through: batch.through,
            counters: engine.counters().clone(),
            blind_spots: engine.take_tls_blind_spots(),
            capture_hints: engine.take_capture_hints(),
            spare: batch,
        };
        if answers.send(answer).is_err() {
            return;
        }
    }
}

/// Worker count for `--workers 0` (auto) in the agent, from the CPUs this process may use:
/// one worker per 8 CPUs, at least 1, at most 8. One worker decodes about 1 M packets/s of
/// HTTP/1 (BENCHMARKS.md); a node pushes more than that through its capture only with many
/// cores of application work, and every extra worker costs a frame copy and a handoff per
/// packet and takes a core from the workloads when traffic peaks. Up to 15 CPUs the agent
/// stays on one engine thread (no dispatch cost at all).
pub fn auto_workers(cpus: usize) -> usize {
    (cpus / 8).clamp(1, 8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flows::engine::L4Records;
    use flows::synth::http_connection;

    fn run(engine: &mut dyn FlowEngine, frames: &[flows::synth::SynthFrame]) -> Vec<String> {
        let mut out = Vec::new();
        let mut last = 0;
        for f in frames {
            engine.handle_frame(f.ts_ns, LinkType::Ethernet, &f.data, f.capture_meta());
            engine.handle_timeout(f.ts_ns);
            out.extend(std::iter::from_fn(|| engine.poll_record()).map(|r| key(&r)));
            last = f.ts_ns;
        }
        engine.flush(last);
        out.extend(std::iter::from_fn(|| engine.poll_record()).map(|r| key(&r)));
        out
    }

    /// A record without its generated ids (each worker has its own id stream).
    fn key(r: &Record) -> String {
        match r {
            Record::Flow(f) => {
                let mut f = (**f).clone();
                f.trace_context = None;
                serde_json::to_string(&f).unwrap()
            }
            Record::Span(s) => format!("span {} {}", s.name, s.start_time_ns),
        }
    }

    #[test]
    fn workers_report_what_one_engine_reports_in_capture_order() {
        // Many connections, interleaved by time, so both workers get some.
        let mut frames: Vec<_> = (0..40)
            .flat_map(|i| http_connection(40000 + i, 3, 200, u64::from(i) * 1_000_000))
            .collect();
        frames.sort_by_key(|f| f.ts_ns);
        let config = EngineConfig {
            l4_records: L4Records::EveryPacket,
            id_seed: 1,
            ..EngineConfig::default()
        };
        let mut one = Engine::new(config.clone());
        let expected = run(&mut one, &frames);
        assert!(expected.len() > 40 * 3 * 2);
        for workers in [2, 3] {
            let mut many = ShardedEngine::new(config.clone(), workers, 5);
            let got = run(&mut many, &frames);
            // Every flow here is produced by a packet: same sequence, capture order.
            let flows = |v: &[String]| -> Vec<String> {
                v.iter()
                    .filter(|l| !l.starts_with("span"))
                    .cloned()
                    .collect()
            };
            assert_eq!(flows(&got), flows(&expected), "{workers} workers");
            let mut a = got.clone();
            let mut b = expected.clone();
            a.sort();
            b.sort();
            assert_eq!(a, b, "{workers} workers");
            assert_eq!(many.counters(), one.counters(), "{workers} workers");
            assert!(many.worker_counters.iter().all(|c| c.packets > 0));
        }
    }

    #[test]
    fn settled_only_when_no_frame_is_out_and_no_record_waits() {
        let frames = http_connection(40000, 1, 200, 0);
        let config = EngineConfig {
            l4_records: L4Records::EveryPacket,
            ..EngineConfig::default()
        };
        let mut one = Engine::new(config.clone());
        let mut many = ShardedEngine::new(config, 2, 5);
        assert!(many.is_settled(), "nothing given yet");
        let f = &frames[0];
        let meta = f.capture_meta();
        FlowEngine::handle_frame(&mut one, f.ts_ns, LinkType::Ethernet, &f.data, meta);
        // One engine has nothing out (its `is_settled` is always true): the record is there
        // at once, and nothing after it.
        assert!(
            FlowEngine::poll_record(&mut one).is_some(),
            "one engine gives the SYN's record at once"
        );
        assert!(FlowEngine::poll_record(&mut one).is_none());
        many.handle_frame(f.ts_ns, LinkType::Ethernet, &f.data, meta);
        assert!(!many.is_settled(), "a frame in the round not handed over");
        many.sync();
        assert!(!many.is_settled(), "a round out at the workers");
        // The answer comes when a worker gets to it; its record waits until polled.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut records = 0;
        while !many.is_settled() {
            assert!(std::time::Instant::now() < deadline, "never settled");
            while many.poll_record().is_some() {
                records += 1;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(
            records, 1,
            "the SYN's L3/L4 record came back before settling"
        );
        assert!(many.poll_record().is_none());
    }

    #[test]
    fn the_agent_default_is_one_worker_per_8_cpus_up_to_8() {
        assert_eq!(auto_workers(1), 1);
        assert_eq!(auto_workers(2), 1);
        assert_eq!(auto_workers(15), 1);
        assert_eq!(auto_workers(16), 2);
        assert_eq!(auto_workers(64), 8);
        assert_eq!(auto_workers(256), 8);
    }
}
