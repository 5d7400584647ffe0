//! Who called whom: which end of an exchange a span is about, and whose it is.
//!
//! An exchange has two ends: the connecting one, the client (it sent the SYN; on a connection
//! joined mid-way, the end that sends the requests), and the accepting one, the server. The
//! OpenTelemetry trace API names a span after its end's role: CLIENT "describes a request to
//! some remote service", SERVER "covers server-side handling of a remote request"
//! (opentelemetry-specification, trace/api.md "SpanKind"). So a span's kind is the role of the
//! process that owns it, never the direction a packet was captured in: curl fetching from a
//! local python3 is a CLIENT span of curl and a SERVER span of python3.
//!
//! Which ends are processes on this node is known only to the agent (kernel socket events,
//! sometimes after the exchange's records are out). With
//! [`crate::engine::EngineConfig::span_both_ends`] the engine builds each exchange's span for
//! both ends (the second in [`Span::counterpart`]); [`spans_for_owners`] then keeps the span of
//! each end that has an owner, or, when neither has, the span of the end the capture direction
//! points at (the request leaving this host: its client is local; arriving: its server is).

use crate::packet::Direction;
use crate::record::{ProcessInfo, Span, SpanKind};

/// The end of an exchange a capture points at, when the owners are not known: a request
/// captured leaving this host was sent by a local client; otherwise a local server received
/// it (also the choice when the direction is unknown, e.g. in pcap files, which are most
/// often taken on servers).
pub fn end_by_capture(request_direction: Direction) -> SpanKind {
    match request_direction {
        Direction::Egress => SpanKind::Client,
        _ => SpanKind::Server,
    }
}

/// The owners of an exchange's two ends, where they are processes on this node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndOwners {
    /// Owner of the connecting end.
    pub client: Option<ProcessInfo>,
    /// Owner of the accepting end.
    pub server: Option<ProcessInfo>,
}

impl EndOwners {
    /// The owners of an L7 flow's exchange's ends, from the owners of its packet's local end
    /// (`mine`: the sender of an `Egress` packet, the receiver of an `Ingress` one) and of its
    /// other end: a request goes client -> server, a response (`reply`) server -> client.
    pub fn of_flow(
        direction: Direction,
        reply: bool,
        mine: &Option<ProcessInfo>,
        peer: &Option<ProcessInfo>,
    ) -> Self {
        let (source, destination) = match direction {
            Direction::Ingress => (peer, mine),
            _ => (mine, peer),
        };
        let (client, server) = if reply {
            (destination, source)
        } else {
            (source, destination)
        };
        Self {
            client: client.clone(),
            server: server.clone(),
        }
    }

    /// Takes the ends still unknown from `other` (what the exchange's other flow said).
    pub fn fill_from(&mut self, other: Self) {
        self.client = self.client.take().or(other.client);
        self.server = self.server.take().or(other.server);
    }
}

/// The spans to report for an exchange whose span (with its [`Span::counterpart`], when built)
/// is `span`, given who owns its ends:
/// - both ends local: the CLIENT span owned by the client and the SERVER span owned by the
///   server, the SERVER span a child of the CLIENT one unless the request's `traceparent`
///   named its parent (W3C Trace Context §3.2.2.4: `parent-id` is the caller's span);
/// - one end local: that end's span, owned by it;
/// - neither known: `span` as the engine built it (kind from the capture direction).
///
/// Without a counterpart only `span` itself can be reported; it gets its end's owner.
pub fn spans_for_owners(mut span: Box<Span>, owners: EndOwners) -> impl Iterator<Item = Box<Span>> {
    let counterpart = span.counterpart.take();
    let owned = |kind: SpanKind| match kind {
        SpanKind::Client => owners.client.is_some(),
        SpanKind::Server => owners.server.is_some(),
        // The engine builds exchange spans only; an INTERNAL one has no end to own.
        SpanKind::Internal => false,
    };
    let none_owned = owners.client.is_none() && owners.server.is_none();
    // The engine's span stays when no end is known, when its end is, and when it is all
    // there is (built without a counterpart).
    let keep = none_owned || owned(span.kind) || counterpart.is_none();
    let other = counterpart.filter(|c| owned(c.kind));
    let mut first = keep.then_some(span);
    let mut second = other;
    if let (Some(a), Some(b)) = (&mut first, &mut second) {
        let (client, server) = match a.kind {
            SpanKind::Client => (a, b),
            SpanKind::Server | SpanKind::Internal => (b, a),
        };
        server.parent_span_id = server.parent_span_id.or(Some(client.span_id));
    }
    let mut owners = owners;
    let mut own = |s: &mut Box<Span>| {
        s.process = match s.kind {
            SpanKind::Client => owners.client.take(),
            SpanKind::Server => owners.server.take(),
            SpanKind::Internal => None,
        };
    };
    first.iter_mut().for_each(&mut own);
    second.iter_mut().for_each(&mut own);
    // CLIENT first: the caller's span before the callee's.
    if first.as_ref().is_some_and(|s| s.kind == SpanKind::Server) {
        std::mem::swap(&mut first, &mut second);
    }
    [first, second].into_iter().flatten()
}
