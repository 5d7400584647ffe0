//! HTTP/2 (RFC 9113) and gRPC over reassembled TCP streams, in layers like h2:
//! [`frame`] (one module per frame type, RFC checks beside each) -> [`hpack`] (one decoder
//! per direction) -> [`stream`] (per-stream state) -> [`grpc`].
//!
//! Entry points: the client preface (prior knowledge, RFC 9113 §3.3), an HTTP/1.1
//! `Upgrade: h2c` answered by 101 (RFC 7540 §3.2; the upgrade request becomes stream 1), or
//! a connection joined mid-way, recognised by a run of plausible frame headers. For the last,
//! HPACK state is unknown: only what can be known is decoded (static-table and literal
//! fields, and dynamic entries inserted since capture began — see [`hpack::table`]), unknown
//! fields stay unknown and are counted, and every stream still yields one report.
//!
//! DNS messages carried on streams (RFC 8484, `application/dns-message`) are reported as DNS
//! flows too ([`doh`]).
//!
//! Bounded under hostile input: DATA is streamed, never buffered; other frames are buffered
//! up to `h2_max_frame_bytes` (bigger ones are skipped); a field block across CONTINUATION
//! frames is capped in bytes and frames; decoded field lists are capped; the HPACK table is
//! capped; tracked streams are capped. Every cap hit is counted.

mod doh;
pub mod frame;
pub mod grpc;
pub mod hpack;
pub mod records;
pub mod stream;
mod stream_table;

use std::collections::VecDeque;
use std::sync::Arc;

use compact_str::CompactString;

use frame::{flags, FrameHeader, FrameType, HEADER_LEN};
use hpack::Field;
use stream::{FieldSummary, Stream};
pub use stream::{GrpcCall, H2Request, H2Response, H2Stream, StreamEnd};

use crate::l7::dns::doh::is_dns_message;
use crate::l7::exchange::{new_trace, RequestHead};
use crate::l7::{L7Config, L7Context, L7Event, L7Protocol, PacketCtx, StreamDecoder, StreamDir};
use crate::record::GrpcStatusSource;
use crate::tcp::StreamEvent;
use crate::trace::{is_traceparent, InboundTraceParent};

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Bytes of a stream searched for frame boundaries at once.
const SYNC_WINDOW: usize = 4 * (frame::DEFAULT_MAX_FRAME_SIZE as usize + HEADER_LEN);

/// Packets whose times are kept while searching for a frame boundary (later ones share the
/// last slot's time).
const MAX_SYNC_CHUNKS: usize = 64;

/// Stream ids remembered after they finish, so late frames do not reopen them.
const CLOSED_MEMORY: usize = 256;

/// How long a stream the client reset waits for the server's frames already in flight
/// (RFC 9113 §5.4.2, §6.4: the sender of RST_STREAM must expect them). They were sent before
/// the server read the reset, so they arrive within about a round trip plus the server's
/// delay in reading; a second covers real networks and keeps cancellations prompt. A stream
/// the server ends (END_STREAM or its own RST_STREAM) is reported at once. The wait is timed
/// by the connection's own packets: without any, the report comes when the connection ends
/// or is evicted.
const RESET_LINGER_NS: u64 = 1_000_000_000;

/// RFC 9113 §7 PROTOCOL_ERROR.
const PROTOCOL_ERROR: u32 = 0x1;

/// What the HTTP/2 decoder reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Http2Event {
    /// A request's field block was decoded.
    Request(Arc<H2Request>),
    /// A stream finished.
    Stream(Arc<H2Stream>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Matching the client preface; bytes matched so far.
    Preface(usize),
    /// At frame boundaries.
    Frames,
    /// Searching for a frame boundary (joined mid-way, or after a gap).
    Sync,
    /// The direction ended.
    Ended,
}

#[derive(Debug, Clone, Copy)]
enum InFrame {
    /// Gathering the payload of a frame we decode.
    Buffer(FrameHeader),
    /// Skipping a payload (too large, or lost to a gap).
    Skip { remaining: u64 },
    /// DATA: waiting for the Pad Length byte.
    DataPad(FrameHeader),
    /// DATA: streaming the data, then skipping the padding.
    Data {
        hdr: FrameHeader,
        data_left: u32,
        pad_left: u32,
    },
}

#[derive(Debug)]
enum BlockKind {
    Headers { end_stream: bool },
    PushPromise { promised: u32 },
}

/// A field block waiting for CONTINUATION frames.
#[derive(Debug)]
struct PendingBlock {
    stream_id: u32,
    kind: BlockKind,
    buf: Vec<u8>,
    frames: usize,
    start: PacketCtx,
}

/// One direction of the connection.
#[derive(Debug)]
struct Half {
    mode: Mode,
    /// Partial frame header, buffered payload, or bytes being searched.
    buf: Vec<u8>,
    frame: Option<InFrame>,
    hpack: hpack::Decoder,
    block: Option<PendingBlock>,
    /// Frames decoded in this direction.
    frames: u64,
    /// Field blocks decoded in this direction.
    blocks: u64,
    /// Bytes discarded while searching for frame boundaries.
    sync_skipped: usize,
    gapped: bool,
    /// The receiver's SETTINGS_MAX_FRAME_SIZE (RFC 9113 §4.2), when known.
    max_frame: Option<u32>,
    /// While searching: where each packet's bytes start in `buf`.
    sync_ctx: Vec<(usize, PacketCtx)>,
}

impl Half {
    fn new(mode: Mode, hpack: hpack::Decoder) -> Self {
        Self {
            mode,
            buf: Vec::new(),
            frame: None,
            hpack,
            block: None,
            frames: 0,
            blocks: 0,
            sync_skipped: 0,
            gapped: false,
            max_frame: None,
            sync_ctx: Vec::new(),
        }
    }
}

fn idx(dir: StreamDir) -> usize {
    match dir {
        StreamDir::ToServer => 0,
        StreamDir::ToClient => 1,
    }
}

/// Decodes both directions of one HTTP/2 connection.
#[derive(Debug)]
pub struct Http2Decoder {
    halves: [Half; 2],
    streams: stream_table::StreamTable,
    closed: VecDeque<u32>,
    /// The highest id ever put in `closed`: a stream above it (every new stream, ids only
    /// grow, RFC 9113 §5.1.1) skips the search of `closed`.
    closed_max: u32,
    /// Bytes of field values kept by open streams (bounded by `h2_max_stream_state_bytes`).
    stream_bytes: usize,
    max_stream_bytes: usize,
    /// Highest client stream id whose request we decoded.
    max_client_stream: u32,
    /// Time of the last capture gap that lost frame sync (0: none): a stream last active
    /// before it may have lost its end in it.
    sync_lost_ns: u64,
    /// Whether we know which side is the client (preface/upgrade seen, or a field block with
    /// `:method` or `:status` decoded).
    roles_known: bool,
    /// The engine's guess of the roles was wrong (a connection joined mid-way between two
    /// ephemeral ports): bytes "to the server" come from the server.
    swapped: bool,
    /// The HPACK state was known from the start (preface or upgrade seen).
    from_start: bool,
    dead: bool,
    /// Decoding stopped at a connection error (RFC 9113 §5.4.1), not for want of HTTP/2.
    connection_error: bool,
    /// Streams the client reset before the server ended them, with the reset's time, oldest
    /// first: reported once the server ends them or [`RESET_LINGER_NS`] passes.
    lingering: VecDeque<(u32, u64)>,
    /// The fields of the field block being read, kept (empty) between blocks so a block costs
    /// no allocation for its list.
    field_buf: Vec<Field>,
}

/// Field list capacity kept between field blocks; a larger one (a long block) is freed.
const FIELD_BUF_KEPT: usize = 64;

impl Http2Decoder {
    /// A connection seen from its client preface (prior knowledge, RFC 9113 §3.3).
    pub fn with_preface(config: &L7Config) -> Self {
        let cap = config.h2_max_hpack_table_bytes;
        let mut halves = [
            Half::new(Mode::Preface(0), hpack::Decoder::new(cap)),
            Half::new(Mode::Frames, hpack::Decoder::new(cap)),
        ];
        for h in &mut halves {
            h.max_frame = Some(frame::DEFAULT_MAX_FRAME_SIZE);
        }
        Self {
            roles_known: true,
            halves,
            streams: stream_table::StreamTable::new(),
            closed: VecDeque::new(),
            closed_max: 0,
            stream_bytes: 0,
            max_stream_bytes: config.h2_max_stream_state_bytes,
            max_client_stream: 0,
            sync_lost_ns: 0,
            swapped: false,
            from_start: true,
            dead: false,
            connection_error: false,
            lingering: VecDeque::new(),
            field_buf: Vec::new(),
        }
    }

    /// A connection joined mid-way: frames are found by their headers, HPACK state is partial.
    pub fn mid_stream(config: &L7Config) -> Self {
        let cap = config.h2_max_hpack_table_bytes;
        Self {
            halves: [
                Half::new(Mode::Frames, hpack::Decoder::partial(cap)),
                Half::new(Mode::Frames, hpack::Decoder::partial(cap)),
            ],
            streams: stream_table::StreamTable::new(),
            closed: VecDeque::new(),
            closed_max: 0,
            stream_bytes: 0,
            max_stream_bytes: config.h2_max_stream_state_bytes,
            max_client_stream: 0,
            sync_lost_ns: 0,
            roles_known: false,
            swapped: false,
            from_start: false,
            dead: false,
            connection_error: false,
            lingering: VecDeque::new(),
            field_buf: Vec::new(),
        }
    }

    /// A connection upgraded from HTTP/1.1 (`Upgrade: h2c` + 101, RFC 7540 §3.2): the
    /// upgrade request is stream 1, half-closed by the client, and the server's first
    /// response answers it; the client sends the preface next.
    pub fn after_upgrade(request: &RequestHead, config: &L7Config) -> Self {
        let mut d = Self::with_preface(config);
        let mut s = Stream::new(&request.start, false);
        s.request = Some(Arc::new(H2Request {
            stream_id: 1,
            method: Some(CompactString::new(&request.method)),
            scheme: Some("http".into()),
            authority: request.host.as_deref().map(CompactString::new),
            path: Some(CompactString::new(&request.target)),
            content_type: None,
            user_agent: request.user_agent.as_deref().map(CompactString::new),
            grpc_timeout_ns: None,
            headers: request.headers.clone(),
            unknown_fields: 0,
            pushed: false,
            upgraded: true,
            roles_swapped: false,
            trace: request.trace.clone(),
            start: request.start,
            head_end: request.head_end,
        }));
        s.done[0] = true;
        d.streams.insert(1, s);
        d
    }

    fn feed(
        &mut self,
        d: usize,
        mut data: &[u8],
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        while !data.is_empty() && !self.dead {
            let half = &mut self.halves[d];
            match half.mode {
                Mode::Ended => return,
                Mode::Preface(n) => {
                    let want = &PREFACE[n..];
                    let take = want.len().min(data.len());
                    if data[..take] == want[..take] {
                        data = &data[take..];
                        if n + take == PREFACE.len() {
                            half.mode = Mode::Frames;
                            self.preface_done(d, cx.config.h2_max_hpack_table_bytes);
                        } else {
                            half.mode = Mode::Preface(n + take);
                        }
                    } else {
                        cx.counters.h2_bad_preface += 1;
                        self.enter_sync(d, cx);
                    }
                }
                Mode::Sync => {
                    self.sync(d, data, at, cx, out);
                    return;
                }
                Mode::Frames => {
                    // A connection taken for mid-way whose client then sends the preface
                    // (the server spoke first): it was seen from its start after all.
                    if d == 0
                        && half.frames == 0
                        && half.frame.is_none()
                        && half.buf.is_empty()
                        && !half.gapped
                        && data.len() >= 4
                        && PREFACE.starts_with(&data[..PREFACE.len().min(data.len())])
                    {
                        half.mode = Mode::Preface(0);
                        continue;
                    }
                    let used = self.frames(d, data, at, cx, out);
                    data = &data[used..];
                }
            }
        }
    }

    /// The preface completed: if nothing was decoded yet and no gap intervened, the HPACK
    /// state of both directions is known from the start.
    fn preface_done(&mut self, d: usize, table_cap: usize) {
        // §3.4: the preface comes from the client.
        if !self.roles_known {
            self.roles_known = true;
            self.swapped = d == 1;
        }
        let other = &self.halves[1 - d];
        if !self.from_start && other.blocks == 0 && !other.gapped {
            self.from_start = true;
            for h in &mut self.halves {
                h.hpack = hpack::Decoder::new(table_cap);
                h.max_frame.get_or_insert(frame::DEFAULT_MAX_FRAME_SIZE);
            }
        }
    }

    /// The role (0 client, 1 server) of the side that sends wire direction `d`.
    fn role(&self, d: usize) -> usize {
        usize::from(self.swapped) ^ d
    }

    fn enter_sync(&mut self, d: usize, cx: &mut L7Context<'_>) {
        let half = &mut self.halves[d];
        if half.mode != Mode::Sync {
            cx.counters.h2_resyncs += 1;
        }
        half.mode = Mode::Sync;
        half.frame = None;
        half.buf.clear();
        half.sync_ctx.clear();
        if half.block.take().is_some() {
            cx.counters.h2_field_blocks_lost += 1;
        }
        half.hpack.forget();
        self.doh_gap_all(self.role(d));
    }

    /// Searches for a frame boundary; consumes all of `data`.
    fn sync(
        &mut self,
        d: usize,
        data: &[u8],
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        let half = &mut self.halves[d];
        // Remember which packet brought which bytes, so frames found later keep their times.
        if half.sync_ctx.len() >= MAX_SYNC_CHUNKS {
            half.sync_ctx.pop();
        }
        half.sync_ctx.push((half.buf.len(), *at));
        half.buf.extend_from_slice(data);
        // Segment ends say little here (any segmentation should give the same result): insist
        // on two chained plausible headers, except for a frame that starts right where the
        // search began (a capture that starts at a segment that starts a frame).
        let found = match frame::find_frame_start(&half.buf, false) {
            Ok(off) => Ok(off),
            Err(keep) if frame::find_frame_start(&half.buf, true) == Ok(0) => {
                let _ = keep;
                Ok(0)
            }
            Err(keep) => Err(keep),
        };
        match found {
            Ok(off) => {
                cx.counters.h2_sync_skipped_bytes += off as u64;
                let rest = std::mem::take(&mut half.buf);
                let chunks = std::mem::take(&mut half.sync_ctx);
                half.mode = Mode::Frames;
                for (i, (start, ctx)) in chunks.iter().enumerate() {
                    let end = chunks.get(i + 1).map_or(rest.len(), |c| c.0);
                    let (start, end) = ((*start).max(off), end.max(off));
                    if start < end {
                        self.feed(d, &rest[start..end], ctx, cx, out);
                    }
                }
            }
            Err(keep) => {
                let keep = keep.min(SYNC_WINDOW);
                let drop = half.buf.len() - keep;
                half.buf.drain(..drop);
                // Shift the chunk offsets; chunks wholly dropped collapse onto offset 0.
                let mut kept: Vec<(usize, PacketCtx)> = Vec::new();
                for (start, ctx) in half.sync_ctx.drain(..) {
                    let start = start.saturating_sub(drop);
                    match kept.last_mut() {
                        Some(last) if last.0 == start => *last = (start, ctx),
                        _ => kept.push((start, ctx)),
                    }
                }
                half.sync_ctx = kept;
                half.sync_skipped += drop;
                cx.counters.h2_sync_skipped_bytes += drop as u64;
                let never_framed = self.halves.iter().all(|h| h.frames == 0);
                if never_framed && self.halves[d].sync_skipped > cx.config.max_detect_bytes {
                    self.dead = true;
                }
            }
        }
    }

    /// Consumes frame bytes from `data`; returns how many.
    fn frames(
        &mut self,
        d: usize,
        data: &[u8],
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) -> usize {
        let half = &mut self.halves[d];
        match half.frame {
            None => {
                // Gather the 9-byte header.
                let have = half.buf.len();
                let take = (HEADER_LEN - have).min(data.len());
                let hdr = if have == 0 && take == HEADER_LEN {
                    FrameHeader::parse(data)
                } else {
                    half.buf.extend_from_slice(&data[..take]);
                    if half.buf.len() < HEADER_LEN {
                        return take;
                    }
                    let h = FrameHeader::parse(&half.buf);
                    half.buf.clear();
                    h
                };
                let hdr = hdr.expect("nine bytes");
                self.start_frame(d, hdr, at, cx, out);
                take
            }
            Some(InFrame::Skip { remaining }) => {
                let take = remaining.min(data.len() as u64);
                half.frame = (remaining > take).then_some(InFrame::Skip {
                    remaining: remaining - take,
                });
                take as usize
            }
            Some(InFrame::DataPad(hdr)) => {
                match frame::data::split(&hdr, data[0]) {
                    Ok((data_left, pad_left)) => {
                        half.frame = Some(InFrame::Data {
                            hdr,
                            data_left,
                            pad_left,
                        });
                        if data_left == 0 && pad_left == 0 {
                            half.frame = None;
                            self.data_end(d, &hdr, at, cx, out);
                        }
                    }
                    Err(_) => {
                        cx.counters.h2_frame_errors += 1;
                        half.frame = Some(InFrame::Skip {
                            remaining: u64::from(hdr.len - 1),
                        });
                        if hdr.len == 1 {
                            half.frame = None;
                        }
                    }
                }
                1
            }
            Some(InFrame::Data {
                hdr,
                data_left,
                pad_left,
            }) => {
                let take = (data_left as usize).min(data.len());
                let pad = (pad_left as usize).min(data.len() - take);
                let (data_left, pad_left) = (data_left - take as u32, pad_left - pad as u32);
                half.frame = Some(InFrame::Data {
                    hdr,
                    data_left,
                    pad_left,
                });
                if take > 0 {
                    self.stream_data(d, hdr.stream_id, &data[..take], at);
                }
                if data_left == 0 && pad_left == 0 {
                    self.halves[d].frame = None;
                    self.data_end(d, &hdr, at, cx, out);
                }
                take + pad
            }
            Some(InFrame::Buffer(hdr)) => {
                let len = hdr.len as usize;
                if half.buf.is_empty() && data.len() >= len {
                    half.frame = None;
                    self.handle_frame(d, &hdr, &data[..len], at, cx, out);
                    return len;
                }
                let take = (len - half.buf.len()).min(data.len());
                half.buf.extend_from_slice(&data[..take]);
                if half.buf.len() == len {
                    half.frame = None;
                    let payload = std::mem::take(&mut half.buf);
                    self.handle_frame(d, &hdr, &payload, at, cx, out);
                    let mut payload = payload;
                    payload.clear();
                    if self.halves[d].buf.is_empty() && payload.capacity() <= 16 * 1024 {
                        self.halves[d].buf = payload;
                    }
                }
                take
            }
        }
    }

    fn start_frame(
        &mut self,
        d: usize,
        hdr: FrameHeader,
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        // §4.2: a frame larger than the receiver's SETTINGS_MAX_FRAME_SIZE is an error. Joined
        // mid-way the setting is unknown: any length for known types, the default for
        // extension types (small in practice, and junk often looks like one).
        let max_len = match (self.halves[d].max_frame, hdr.kind) {
            (Some(m), _) => m,
            (None, FrameType::Unknown(_)) => frame::DEFAULT_MAX_FRAME_SIZE,
            (None, _) => u32::MAX,
        };
        if hdr.check().is_err()
            || hdr.len > max_len
            || hdr.reserved_bit && self.halves[d].frames == 0
        {
            // A header that breaks §6's rules: we are not at a frame boundary after all (or
            // the peer is broken). Either way, find the next boundary.
            cx.counters.h2_frame_errors += 1;
            self.enter_sync(d, cx);
            return;
        }
        cx.counters.h2_frames += 1;
        let half = &mut self.halves[d];
        half.frames += 1;
        // §6.10, §4.3: a field block's frames are contiguous, and any other frame (another
        // stream's, or not a CONTINUATION) is a connection error of type PROTOCOL_ERROR: the
        // peer closes the connection, and what follows cannot be tied to any request.
        if let Some(b) = &half.block {
            if !frame::continuation::continues(&hdr, b.stream_id) {
                cx.counters.h2_connection_error_field_block_interrupted += 1;
                self.connection_error(PROTOCOL_ERROR, at.ts_ns, cx, out);
                return;
            }
        }
        let half = &mut self.halves[d];
        match hdr.kind {
            FrameType::Data => {
                half.frame = if hdr.has(flags::PADDED) {
                    Some(InFrame::DataPad(hdr))
                } else {
                    Some(InFrame::Data {
                        hdr,
                        data_left: hdr.len,
                        pad_left: 0,
                    })
                };
                if hdr.len == 0 {
                    half.frame = None;
                    self.data_end(d, &hdr, at, cx, out);
                }
            }
            _ if hdr.len as usize > cx.config.h2_max_frame_bytes => {
                cx.counters.h2_frames_oversized += 1;
                half.frame = Some(InFrame::Skip {
                    remaining: u64::from(hdr.len),
                });
                if hdr.kind.carries_field_block() {
                    cx.counters.h2_field_blocks_lost += 1;
                    half.block = None;
                    half.hpack.forget();
                    self.mark_lost(d, hdr.stream_id);
                }
            }
            _ if hdr.len == 0 => self.handle_frame(d, &hdr, &[], at, cx, out),
            _ => half.frame = Some(InFrame::Buffer(hdr)),
        }
    }

    /// A field block of stream `sid` from direction `d` was lost: the stream is partial, and
    /// from the server, its `grpc-status` may have been in it.
    fn mark_lost(&mut self, d: usize, sid: u32) {
        let server = self.role(d) == 1;
        if let Some(s) = self.streams.get_mut(&sid) {
            s.partial = true;
            s.response_fields_unknown |= server;
        }
    }

    /// A connection error (RFC 9113 §5.4.1): the peer sends GOAWAY and closes the connection,
    /// so decoding stops here. Streams under way end with it; their requests were reported.
    fn connection_error(
        &mut self,
        code: u32,
        at_ns: u64,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        self.dead = true;
        self.connection_error = true;
        for h in &mut self.halves {
            h.mode = Mode::Ended;
            h.frame = None;
            h.buf = Vec::new();
            h.block = None;
            h.sync_ctx = Vec::new();
        }
        let ids: Vec<u32> = self.streams.keys().copied().collect();
        for id in ids {
            self.close_stream(id, StreamEnd::ConnectionError { code }, at_ns, cx, out);
        }
    }

    /// Reports the streams the client reset whose wait for the server's frames in flight is
    /// over at `now_ns`; returns how many it reported.
    fn end_lingering(
        &mut self,
        now_ns: u64,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) -> u64 {
        let mut reported = 0;
        while let Some(&(sid, reset_ns)) = self.lingering.front() {
            if now_ns.saturating_sub(reset_ns) < RESET_LINGER_NS {
                break;
            }
            self.lingering.pop_front();
            // Already reported if the server ended it meanwhile.
            reported += u64::from(self.streams.contains_key(&sid));
            self.close_stream(sid, StreamEnd::ConnectionEnd, now_ns, cx, out);
        }
        reported
    }

    /// RST_STREAM from direction `d` (RFC 9113 §6.4).
    fn rst_stream(
        &mut self,
        d: usize,
        sid: u32,
        code: u32,
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        let by_client = self.role(d) == 0;
        // A reset of a stream we never saw still says a request was under way.
        let Some(s) = self.stream_for(sid, at, cx, out, false) else {
            return;
        };
        let end = StreamEnd::Reset { code, by_client };
        match (by_client, s.reset.is_some()) {
            // The client repeating itself: nothing new.
            (true, true) => {}
            // §5.4.2, §6.4: the server's frames sent before it read the reset still come
            // (a response crossing a cancel); wait for them. The client's side is over.
            (true, false) if !s.done[1] => {
                s.reset = Some(end);
                s.cancelled = true;
                s.done[0] = true;
                cx.counters.h2_streams_cancelled += 1;
                self.lingering.push_back((sid, at.ts_ns));
                // Bounded like the streams themselves; the oldest wait ends early.
                if self.lingering.len() > cx.config.h2_max_streams {
                    if let Some((old, _)) = self.lingering.pop_front() {
                        self.close_stream(old, end, at.ts_ns, cx, out);
                    }
                }
            }
            // The server's reset (or a reset after the server ended): nothing more will
            // answer the request.
            _ => self.close_stream(sid, end, at.ts_ns, cx, out),
        }
    }

    /// The stream `sid` for a frame in direction `d`, created when first seen (unless it
    /// finished already or too many are open).
    fn stream_for(
        &mut self,
        sid: u32,
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
        opens: bool,
    ) -> Option<&mut Stream> {
        if !self.streams.contains_key(&sid) {
            // Newest first: a late frame is most often for a stream that just closed.
            if sid <= self.closed_max && self.closed.iter().rev().any(|&c| c == sid) {
                cx.counters.h2_frames_on_closed_streams += 1;
                return None;
            }
            if self.streams.len() >= cx.config.h2_max_streams {
                self.evict_gapped_stream(at.ts_ns, cx, out);
            }
            let counters = &mut *cx.counters;
            if self.streams.len() >= cx.config.h2_max_streams
                || self.stream_bytes > self.max_stream_bytes
            {
                counters.h2_streams_over_cap += 1;
                return None;
            }
            // A stream whose first frame we see is not its opening HEADERS was under way
            // before the capture (or before a gap).
            self.streams.insert(sid, Stream::new(at, !opens));
            counters.h2_streams += 1;
        }
        let s = self.streams.get_mut(&sid)?;
        s.last_ns = s.last_ns.max(at.ts_ns);
        if s.reset.is_some() {
            cx.counters.h2_frames_after_reset += 1;
        }
        Some(s)
    }

    /// The stream table is full: reports the least recently active stream that lost bytes to
    /// a capture gap, or was last active before a gap that lost frame sync
    /// ([`StreamEnd::Evicted`]), so that new streams are still decoded. Such a
    /// stream's END_STREAM was most likely in the gap and would otherwise hold its slot until
    /// the connection ends; a table full of streams with nothing lost is a real burst of
    /// concurrency (RFC 9113 §5.1.2) and is left alone (`h2_streams_over_cap` counts it).
    #[cold]
    fn evict_gapped_stream(&mut self, now_ns: u64, cx: &mut L7Context<'_>, out: &mut Vec<L7Event>) {
        let victim = self
            .streams
            .iter()
            .filter(|(_, s)| s.partial || s.last_ns <= self.sync_lost_ns)
            .min_by_key(|(_, s)| s.last_ns)
            .map(|(&id, _)| id);
        if let Some(id) = victim {
            cx.counters.h2_streams_evicted += 1;
            self.close_stream(id, StreamEnd::Evicted, now_ns, cx, out);
        }
    }

    fn stream_data(&mut self, d: usize, sid: u32, bytes: &[u8], at: &PacketCtx) {
        let role = self.role(d);
        if let Some(s) = self.streams.get_mut(&sid) {
            let r = role;
            s.body_bytes[r] += bytes.len() as u64;
            s.readers[r].feed(bytes);
            s.last_ns = s.last_ns.max(at.ts_ns);
            if s.doh.capturing(r) {
                self.doh_data(sid, r, bytes);
            }
        }
    }

    /// A DATA frame ended (its payload streamed through `stream_data`).
    fn data_end(
        &mut self,
        d: usize,
        hdr: &FrameHeader,
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        cx.counters.h2_data_frames += 1;
        // DATA for a stream not seen yet: it was opened before the capture.
        if self.stream_for(hdr.stream_id, at, cx, out, false).is_none() {
            return;
        }
        if hdr.has(flags::END_STREAM) {
            self.end_side(self.role(d), hdr.stream_id, at, cx, out);
        }
    }

    fn end_side(
        &mut self,
        d: usize,
        sid: u32,
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        self.doh_side_end(sid, d, at, cx, out);
        let Some(s) = self.streams.get_mut(&sid) else {
            return;
        };
        s.done[d] = true;
        if d == 1 && s.request.is_none() && s.partial && sid < self.max_client_stream {
            // Its request (and the client's END_STREAM) went by before the capture began —
            // the client has opened later streams (§5.1.1: ids only grow) — so the server's
            // end is the last we will learn.
            s.done[0] = true;
        }
        if s.done == [true, true] {
            self.close_stream(sid, StreamEnd::Complete, at.ts_ns, cx, out);
        }
    }

    fn close_stream(
        &mut self,
        sid: u32,
        end: StreamEnd,
        at_ns: u64,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        let Some(mut s) = self.streams.remove(&sid) else {
            return;
        };
        s.doh_close(cx);
        // A stream the client reset ends with that reset, when its last frame came.
        let (end, at_ns) = match s.reset {
            Some(reset) => (reset, s.last_ns),
            None => (end, at_ns),
        };
        self.stream_bytes -= s.bytes;
        if self.closed.len() >= CLOSED_MEMORY {
            self.closed.pop_front();
        }
        self.closed.push_back(sid);
        self.closed_max = self.closed_max.max(sid);
        let mut st = s.finish(sid, end, at_ns);
        st.roles_swapped = self.swapped;
        let c = &mut *cx.counters;
        match st.end {
            StreamEnd::Complete => {}
            StreamEnd::Reset { .. } => c.h2_streams_reset += 1,
            StreamEnd::GoAway { .. } => c.h2_streams_refused_by_goaway += 1,
            StreamEnd::ConnectionEnd | StreamEnd::ConnectionError { .. } | StreamEnd::Evicted => {
                c.h2_streams_unfinished += 1
            }
        }
        let unknown_fields = st.request.as_ref().map_or(0, |r| r.unknown_fields)
            + st.response.as_ref().map_or(0, |r| r.unknown_fields);
        if st.partial || unknown_fields > 0 {
            c.h2_streams_partial += 1;
        }
        if let Some(g) = &st.grpc {
            c.grpc_calls += 1;
            match g.status_source {
                Some(GrpcStatusSource::DerivedFromHttpStatus) => {
                    c.grpc_status_derived_from_http_status += 1
                }
                Some(GrpcStatusSource::InferredFromMessage) => {
                    c.grpc_status_inferred_from_message += 1
                }
                Some(GrpcStatusSource::Trailers) | None => {}
            }
        }
        out.push(L7Event::Http2(Http2Event::Stream(Arc::new(st))));
    }

    fn handle_frame(
        &mut self,
        d: usize,
        hdr: &FrameHeader,
        payload: &[u8],
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        match hdr.kind {
            FrameType::Headers => match frame::headers::parse(hdr, payload) {
                Ok(h) => {
                    let kind = BlockKind::Headers {
                        end_stream: h.end_stream,
                    };
                    self.block_fragment(d, hdr, kind, h.fragment, h.end_headers, at, cx, out);
                }
                Err(_) => self.lost_block(d, hdr.stream_id, cx),
            },
            FrameType::PushPromise => match frame::push_promise::parse(hdr, payload) {
                Ok(p) => {
                    let kind = BlockKind::PushPromise {
                        promised: p.promised_stream_id,
                    };
                    self.block_fragment(d, hdr, kind, p.fragment, p.end_headers, at, cx, out);
                }
                Err(_) => self.lost_block(d, hdr.stream_id, cx),
            },
            FrameType::Continuation => self.continuation(d, hdr, payload, at, cx, out),
            FrameType::RstStream => {
                if let Ok(code) = frame::rst_stream::parse(hdr, payload) {
                    self.rst_stream(d, hdr.stream_id, code, at, cx, out);
                }
            }
            FrameType::Settings => match frame::settings::parse(hdr, payload) {
                Ok(params) => {
                    for p in params {
                        match p {
                            // §6.5.2: the sender's limit on the *peer's* encoder, which
                            // writes the other direction's field blocks.
                            Ok((frame::settings::HEADER_TABLE_SIZE, v)) => {
                                self.halves[1 - d].hpack.set_limit(v as usize)
                            }
                            Ok((frame::settings::MAX_FRAME_SIZE, v)) => {
                                self.halves[1 - d].max_frame = Some(v)
                            }
                            Ok(_) => {}
                            Err(_) => cx.counters.h2_frame_errors += 1,
                        }
                    }
                }
                Err(_) => cx.counters.h2_frame_errors += 1,
            },
            FrameType::GoAway => {
                if let Ok(g) = frame::goaway::parse(hdr, payload) {
                    cx.counters.h2_goaways += 1;
                    // §6.8: streams the *receiver* initiated above Last-Stream-ID were not
                    // processed. The server's GOAWAY (d = 1) covers client (odd) streams.
                    let receiver_parity = if self.role(d) == 1 { 1 } else { 0 };
                    let refused: Vec<u32> = self
                        .streams
                        .range(g.last_stream_id.saturating_add(1)..)
                        .map(|(&id, _)| id)
                        .filter(|id| id % 2 == receiver_parity)
                        .collect();
                    for id in refused {
                        let end = StreamEnd::GoAway { code: g.error_code };
                        self.close_stream(id, end, at.ts_ns, cx, out);
                    }
                }
            }
            FrameType::WindowUpdate => {
                if frame::window_update::parse(hdr, payload).is_err() {
                    cx.counters.h2_frame_errors += 1;
                }
            }
            FrameType::Priority | FrameType::Ping | FrameType::Unknown(_) => {}
            FrameType::Data => unreachable!("DATA is streamed"),
        }
    }

    fn lost_block(&mut self, d: usize, sid: u32, cx: &mut L7Context<'_>) {
        cx.counters.h2_frame_errors += 1;
        cx.counters.h2_field_blocks_lost += 1;
        self.halves[d].hpack.forget();
        self.mark_lost(d, sid);
    }

    #[allow(clippy::too_many_arguments)]
    fn block_fragment(
        &mut self,
        d: usize,
        hdr: &FrameHeader,
        kind: BlockKind,
        fragment: &[u8],
        end_headers: bool,
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        if end_headers {
            self.field_block(d, hdr.stream_id, kind, fragment, at, at, cx, out);
            return;
        }
        if fragment.len() > cx.config.h2_max_header_block_bytes {
            cx.counters.h2_header_block_too_large += 1;
            self.lost_block(d, hdr.stream_id, cx);
            return;
        }
        self.halves[d].block = Some(PendingBlock {
            stream_id: hdr.stream_id,
            kind,
            buf: fragment.to_vec(),
            frames: 1,
            start: *at,
        });
    }

    fn continuation(
        &mut self,
        d: usize,
        hdr: &FrameHeader,
        payload: &[u8],
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        let half = &mut self.halves[d];
        let Some(b) = half.block.as_mut() else {
            // Its HEADERS was before the capture (or a gap): the block cannot be decoded and
            // the table's later indices are off by an unknown amount.
            cx.counters.h2_orphan_continuations += 1;
            half.hpack.forget();
            self.mark_lost(d, hdr.stream_id);
            return;
        };
        b.frames += 1;
        // CONTINUATION floods (CVE-2024-27316): cap frames and bytes per block.
        if b.frames > cx.config.h2_max_continuation_frames
            || b.buf.len() + payload.len() > cx.config.h2_max_header_block_bytes
        {
            cx.counters.h2_continuation_flood += 1;
            let sid = b.stream_id;
            half.block = None;
            self.lost_block(d, sid, cx);
            return;
        }
        b.buf.extend_from_slice(payload);
        if hdr.has(flags::END_HEADERS) {
            let b = half.block.take().expect("checked above");
            self.field_block(d, b.stream_id, b.kind, &b.buf, &b.start, at, cx, out);
        }
    }

    /// A complete field block of stream `sid` from direction `d`.
    #[allow(clippy::too_many_arguments)]
    fn field_block(
        &mut self,
        d: usize,
        sid: u32,
        kind: BlockKind,
        block: &[u8],
        start: &PacketCtx,
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        let mut fields = std::mem::take(&mut self.field_buf);
        self.decode_field_block(d, sid, kind, block, start, at, cx, out, &mut fields);
        fields.clear();
        if fields.capacity() <= FIELD_BUF_KEPT {
            self.field_buf = fields;
        }
    }

    /// [`Self::field_block`], its fields decoded into `fields` (empty).
    #[allow(clippy::too_many_arguments)]
    fn decode_field_block(
        &mut self,
        d: usize,
        sid: u32,
        kind: BlockKind,
        block: &[u8],
        start: &PacketCtx,
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
        fields: &mut Vec<Field>,
    ) {
        let half = &mut self.halves[d];
        half.blocks += 1;
        let r = half
            .hpack
            .decode(block, cx.config.h2_max_header_list_bytes, fields);
        let c = &mut *cx.counters;
        c.h2_field_blocks += 1;
        let mut lost = false;
        match r {
            Ok(s) => {
                c.h2_hpack_unknown_fields += u64::from(s.unknown_fields);
                c.h2_hpack_resolved_in_partial_table += u64::from(s.resolved_in_partial_table);
                c.h2_header_list_capped += u64::from(s.list_capped);
                c.h2_hpack_bad_size_updates += u64::from(s.bad_size_update);
            }
            Err(_) => {
                c.h2_hpack_errors += 1;
                lost = true;
            }
        }
        if !half.hpack.table().fully_known() {
            c.h2_field_blocks_with_partial_table += 1;
        }
        let mut summary = FieldSummary::new(fields, &cx.config.header_allow_list);
        if !self.roles_known {
            // RFC 9113 §8.3: requests carry `:method`, responses `:status`. Joined mid-way,
            // this is how we learn who the client is.
            let client = match (summary.value_text(":method"), summary.value_text(":status")) {
                (Some(_), None) => Some(!matches!(kind, BlockKind::PushPromise { .. })),
                (None, Some(_)) => Some(false),
                _ => None,
            };
            if let Some(sender_is_client) = client {
                self.roles_known = true;
                self.swapped = sender_is_client != (d == 0);
                if self.swapped {
                    cx.counters.h2_roles_swapped += 1;
                    // Streams made so far had their sides crossed; they were only partial.
                    for st in self.streams.values_mut() {
                        st.done.swap(0, 1);
                        st.body_bytes.swap(0, 1);
                        st.readers.swap(0, 1);
                        st.doh.swap_roles();
                    }
                }
            }
        }
        match kind {
            BlockKind::PushPromise { promised } => {
                // §8.4: the promised request, decoded by the server's encoder state.
                let req = self.request_from(promised, &mut summary, true, start, at, lost, cx);
                let size = request_bytes(&req);
                if let Some(s) = self.stream_for(promised, start, cx, out, true) {
                    s.request = Some(req.clone());
                    s.bytes += size;
                    s.done[0] = true;
                    self.stream_bytes += size;
                    out.push(L7Event::Http2(Http2Event::Request(req)));
                }
            }
            BlockKind::Headers { end_stream } if self.role(d) == 0 => {
                let existing = self.streams.get(&sid).is_some_and(|s| s.request.is_some());
                if !existing {
                    let req = self.request_from(sid, &mut summary, false, start, at, lost, cx);
                    let size = request_bytes(&req);
                    let Some(s) = self.stream_for(sid, start, cx, out, true) else {
                        return;
                    };
                    s.request = Some(req.clone());
                    s.bytes += size;
                    self.stream_bytes += size;
                    cx.counters.h2_requests += 1;
                    let get_path = req
                        .path
                        .as_deref()
                        .filter(|_| req.method.as_deref() == Some("GET"));
                    let dns = req.content_type.as_deref().is_some_and(is_dns_message);
                    self.doh_head(sid, 0, dns, get_path, &summary, at, cx, out);
                    out.push(L7Event::Http2(Http2Event::Request(req)));
                    if sid % 2 == 1 && sid > self.max_client_stream {
                        self.max_client_stream = sid;
                        // Streams joined mid-way that the server already ended: their
                        // requests predate the capture, nothing more will come.
                        let stale: Vec<u32> = self
                            .streams
                            .range(..sid)
                            .filter(|(_, s)| s.request.is_none() && s.partial && s.done[1])
                            .map(|(&id, _)| id)
                            .collect();
                        for id in stale {
                            self.close_stream(id, StreamEnd::Complete, at.ts_ns, cx, out);
                        }
                    }
                }
                // Otherwise: request trailers (§8.1); nothing we report.
                if end_stream {
                    self.end_side(0, sid, at, cx, out);
                }
            }
            BlockKind::Headers { end_stream } => {
                let Some(s) = self.stream_for(sid, start, cx, out, false) else {
                    return;
                };
                let mut added = 0;
                let mut dns = None;
                let status = summary.value_bytes(":status").and_then(stream::status_code);
                let informational = status.is_some_and(|v| (100..200).contains(&v));
                if informational {
                    // §8.1: 1xx responses precede the final one.
                } else if let Some(r) = s.response.as_mut() {
                    // Trailers: what stayed unknown there counts for the response too.
                    r.unknown_fields += summary.unknown + u32::from(lost);
                } else {
                    cx.counters.h2_responses += 1;
                    let content_type = summary.get("content-type");
                    dns = Some(content_type.as_deref().is_some_and(is_dns_message));
                    let size = summary
                        .headers
                        .iter()
                        .map(|h| h.key.len() + h.value.len())
                        .sum::<usize>()
                        + 64;
                    s.bytes += size;
                    added = size;
                    s.response = Some(H2Response {
                        status,
                        content_type,
                        headers: std::mem::take(&mut summary.headers),
                        unknown_fields: summary.unknown + u32::from(lost),
                        start: *start,
                        head_end: *at,
                    });
                }
                // Trailers, or a trailers-only response (gRPC: grpc-status in the only block).
                if let Some(v) = summary.value_text("grpc-status") {
                    s.grpc_status = v.trim().parse().ok();
                }
                if let Some(v) = summary.value_text("grpc-message") {
                    s.grpc_message = Some(grpc::decode_message(&v));
                }
                if lost {
                    s.partial = true;
                }
                // An unknown field may be the grpc-status (see grpc::call_status).
                s.response_fields_unknown |= lost || summary.unknown > 0;
                self.stream_bytes += added;
                // A response head started: DoH looks at its content-type (RFC 8484 §4.2.1).
                if let Some(dns) = dns {
                    self.doh_head(sid, 1, dns, None, &summary, at, cx, out);
                }
                if end_stream {
                    self.end_side(1, sid, at, cx, out);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn request_from(
        &mut self,
        sid: u32,
        f: &mut FieldSummary,
        pushed: bool,
        start: &PacketCtx,
        at: &PacketCtx,
        lost: bool,
        cx: &mut L7Context<'_>,
    ) -> Arc<H2Request> {
        // W3C Trace Context §3.2.1: any casing; every field, as two are invalid.
        let traceparent = InboundTraceParent::from_fields(f.values_where(is_traceparent));
        let trace = new_trace(traceparent, f.value_text("tracestate").as_deref(), cx);
        Arc::new(H2Request {
            stream_id: sid,
            method: f.pseudo(":method"),
            scheme: f.pseudo(":scheme"),
            authority: f.pseudo(":authority").or_else(|| f.get("host")),
            path: f.pseudo(":path"),
            content_type: f.get("content-type"),
            user_agent: f.get("user-agent"),
            grpc_timeout_ns: f.get("grpc-timeout").and_then(|v| grpc::parse_timeout(&v)),
            headers: std::mem::take(&mut f.headers),
            unknown_fields: f.unknown + u32::from(lost),
            pushed,
            upgraded: false,
            roles_swapped: self.swapped,
            trace,
            start: *start,
            head_end: *at,
        })
    }

    /// `len` bytes of this direction were not captured (snapped off or lost). Frame sync
    /// survives when the hole lies inside the current frame's payload **or ends exactly at its
    /// end** (RFC 9113 §4.1: the frame header said how long the payload is): a DATA frame
    /// ending in the hole still ends, with its END_STREAM flag (§6.1) — the common case of a
    /// capture snap length cutting every response segment after its headers. Otherwise the
    /// decoder looks for the next frame header (`enter_sync`).
    fn gap(
        &mut self,
        d: usize,
        len: u64,
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        cx.counters.h2_gaps += 1;
        let half = &mut self.halves[d];
        half.gapped = true;
        match (half.mode, half.frame) {
            (
                Mode::Frames,
                Some(InFrame::Data {
                    hdr,
                    data_left,
                    pad_left,
                }),
            ) if len > 0 && len <= u64::from(data_left) + u64::from(pad_left) => {
                // A hole inside a DATA payload: frame boundaries survive, the stream's
                // message framing does not.
                let from_data = len.min(u64::from(data_left)) as u32;
                let from_pad = (len - u64::from(from_data)) as u32;
                let (data_left, pad_left) = (data_left - from_data, pad_left - from_pad);
                half.frame = Some(InFrame::Data {
                    hdr,
                    data_left,
                    pad_left,
                });
                let role = usize::from(self.swapped) ^ d;
                if let Some(s) = self.streams.get_mut(&hdr.stream_id) {
                    s.readers[role].gap();
                    s.body_bytes[role] += u64::from(from_data);
                    s.partial = true;
                }
                self.doh_gap(hdr.stream_id, role);
                if data_left == 0 && pad_left == 0 {
                    self.halves[d].frame = None;
                    self.data_end(d, &hdr, at, cx, out);
                }
            }
            (Mode::Frames, Some(InFrame::Skip { remaining })) if len > 0 && len <= remaining => {
                half.frame = (len < remaining).then_some(InFrame::Skip {
                    remaining: remaining - len,
                });
            }
            (Mode::Frames, Some(InFrame::Buffer(hdr)))
                if len > 0 && len <= u64::from(hdr.len) - half.buf.len() as u64 =>
            {
                let remaining = u64::from(hdr.len) - half.buf.len() as u64 - len;
                half.buf.clear();
                half.frame = (remaining > 0).then_some(InFrame::Skip { remaining });
                if hdr.kind.carries_field_block() || half.block.is_some() {
                    half.block = None;
                    self.lost_block(d, hdr.stream_id, cx);
                }
            }
            _ => {
                self.sync_lost_ns = at.ts_ns.max(1);
                self.enter_sync(d, cx)
            }
        }
    }
}

/// Bytes a request's kept fields hold (for the per-connection cap).
fn request_bytes(r: &H2Request) -> usize {
    let opt = |v: &Option<CompactString>| v.as_ref().map_or(0, |v| v.len());
    opt(&r.method)
        + opt(&r.scheme)
        + opt(&r.authority)
        + opt(&r.path)
        + opt(&r.content_type)
        + opt(&r.user_agent)
        + r.headers
            .iter()
            .map(|h| h.key.len() + h.value.len())
            .sum::<usize>()
        + r.trace.trace_state.as_ref().map_or(0, String::len)
        + 128
}

impl StreamDecoder for Http2Decoder {
    fn protocol(&self) -> L7Protocol {
        L7Protocol::Http2
    }

    fn on_event(
        &mut self,
        dir: StreamDir,
        event: StreamEvent<'_>,
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        if self.dead {
            return;
        }
        if !self.lingering.is_empty() {
            let _ = self.end_lingering(at.ts_ns, cx, out);
        }
        let d = idx(dir);
        match event {
            StreamEvent::Data(data) => self.feed(d, data, at, cx, out),
            StreamEvent::Gap { len } => self.gap(d, len, at, cx, out),
            StreamEvent::Fin | StreamEvent::Reset => self.halves[d].mode = Mode::Ended,
        }
    }

    /// A cancelled stream's wait ([`RESET_LINGER_NS`]) is otherwise timed by the connection's
    /// own packets; on a connection gone quiet the timeout ends it.
    fn on_timeout(
        &mut self,
        now_ns: u64,
        _request_timeout_ns: u64,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        if self.dead || self.lingering.is_empty() {
            return;
        }
        let reported = self.end_lingering(now_ns, cx, out);
        cx.counters.h2_cancelled_streams_reported_at_timeout += reported;
    }

    fn finish(&mut self, now_ns: u64, cx: &mut L7Context<'_>, out: &mut Vec<L7Event>) {
        // Streams the client reset end with their reset (see `close_stream`).
        self.lingering.clear();
        let ids: Vec<u32> = self.streams.keys().copied().collect();
        for id in ids {
            self.close_stream(id, StreamEnd::ConnectionEnd, now_ns, cx, out);
        }
        for h in &mut self.halves {
            h.mode = Mode::Ended;
        }
    }

    fn is_dead(&self) -> bool {
        self.dead
    }

    fn stopped_by_protocol_error(&self) -> bool {
        self.connection_error
    }

    fn buffered(&self) -> usize {
        self.halves
            .iter()
            .map(|h| {
                h.buf.capacity()
                    + h.block.as_ref().map_or(0, |b| b.buf.capacity())
                    + h.hpack.table().bytes()
            })
            .sum::<usize>()
            + self.stream_bytes
    }
}

#[cfg(test)]
mod tests;
