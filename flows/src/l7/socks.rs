//! Connections through a SOCKS proxy: the handshake is read past, then what the tunnel carries
//! is decoded as any other stream.
//!
//! A client of a SOCKS proxy first speaks SOCKS (version 5, RFC 1928, with the username /
//! password sub-negotiation of RFC 1929; or version 4 and its 4a extension), then, once the
//! proxy has granted the CONNECT, the application protocol to the target over the same TCP
//! connection. Detected on the binary greeting, such a connection was neither HTTP nor
//! anything else, and every exchange it carried was lost. [`Socks`] parses both directions'
//! handshake messages, then treats what follows as an HTTP CONNECT tunnel's bytes
//! ([`ConnectTunnel`]: the protocol detected on its first bytes, as for a fresh connection)
//! and hands the connection over to that decoder ([`StreamDecoder::take_upgrade`]). A
//! handshake that does not parse, a refused request, a command other than CONNECT (BIND, UDP
//! ASSOCIATE), GSS-API authentication or a gap inside the handshake give up: the connection
//! counts as unrecognised, as before.

use super::{
    tunnel::ConnectTunnel, L7Context, L7Event, L7Protocol, PacketCtx, StreamDecoder, StreamDir,
};
use crate::tcp::StreamEvent;

/// Most handshake bytes held in one direction: a SOCKS5 greeting (257), a username/password
/// message (513) and a request with a domain name (262) fit; so does a SOCKS4a request with
/// a long user id and domain.
const MAX_HANDSHAKE: usize = 1100;

/// SOCKS5 method "GSS-API" (RFC 1928 §3, RFC 1961): its messages are not read here.
const METHOD_GSSAPI: u8 = 0x01;
/// SOCKS5 method "username/password" (RFC 1928 §3, RFC 1929).
const METHOD_USERPASS: u8 = 0x02;
/// SOCKS5 method "no acceptable methods".
const METHOD_NONE: u8 = 0xFF;
/// The CONNECT command (both versions).
const CMD_CONNECT: u8 = 0x01;
/// SOCKS4 "request granted" (the reply's CD field).
const SOCKS4_GRANTED: u8 = 90;

/// Whether `first` (a connection's first client bytes) begins a SOCKS handshake: a SOCKS5
/// greeting (VER 5, NMETHODS ≥ 1, the methods all present and each assigned or private, RFC
/// 1928 §3) or a SOCKS4/4a request (VN 4, CD CONNECT or BIND, a NUL-terminated user id).
pub fn starts_handshake(first: &[u8]) -> bool {
    match first {
        [5, n, rest @ ..] if *n >= 1 && rest.len() >= usize::from(*n) => rest[..usize::from(*n)]
            .iter()
            .all(|&m| m <= 0x09 || (0x80..=0xFE).contains(&m)),
        [4, 1 | 2, _, _, _, _, _, _, user @ ..] => user.contains(&0),
        _ => false,
    }
}

/// Where one direction's handshake stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// SOCKS5 client: the method greeting.
    Greeting,
    /// SOCKS5 client: waiting for the proxy's method choice before reading on.
    AwaitMethod,
    /// SOCKS5 client: the RFC 1929 username/password message.
    Auth,
    /// SOCKS5 or SOCKS4 client: the request.
    Request,
    /// SOCKS5 proxy: the method choice.
    MethodChoice,
    /// SOCKS5 proxy: the RFC 1929 status.
    AuthStatus,
    /// Proxy: the reply to the request.
    Reply,
    /// The handshake is over; what follows is the tunnelled protocol.
    Tunnel,
}

/// What parsing the bytes held in one direction found.
enum Parsed {
    /// A whole message of this many bytes.
    Message(usize),
    /// Not enough bytes yet.
    Incomplete,
    /// Not a SOCKS message, or one that ends the handshake without a tunnel.
    Fail,
}

/// Decodes a SOCKS handshake, then the tunnelled stream (see the module docs).
#[derive(Debug)]
pub struct Socks {
    version: u8,
    /// Per direction (0 to the proxy, 1 to the client): its stage and the bytes not yet
    /// parsed.
    stage: [Stage; 2],
    held: [Vec<u8>; 2],
    /// The SOCKS5 method the proxy chose.
    method: Option<u8>,
    /// The tunnel ([`ConnectTunnel`]), once a direction is through the handshake.
    inner: Option<Box<dyn StreamDecoder>>,
    dead: bool,
}

impl Socks {
    /// A decoder for a connection whose first client bytes `first` passed
    /// [`starts_handshake`].
    pub fn new(first: &[u8]) -> Self {
        let version = first.first().copied().unwrap_or(5);
        let stage = if version == 4 {
            [Stage::Request, Stage::Reply]
        } else {
            [Stage::Greeting, Stage::MethodChoice]
        };
        Self {
            version,
            stage,
            held: [Vec::new(), Vec::new()],
            method: None,
            inner: None,
            dead: false,
        }
    }

    /// The length of the message of stage `stage` at the start of `b`.
    fn parse(&self, stage: Stage, b: &[u8]) -> Parsed {
        let need = |n: usize| {
            if b.len() >= n {
                Parsed::Message(n)
            } else {
                Parsed::Incomplete
            }
        };
        match (stage, b) {
            (_, []) => Parsed::Incomplete,
            (Stage::Greeting, [5]) => Parsed::Incomplete,
            (Stage::Greeting, [5, n, ..]) if *n >= 1 => need(2 + usize::from(*n)),
            (Stage::MethodChoice, [5]) => Parsed::Incomplete,
            (Stage::MethodChoice, [5, m, ..]) if *m != METHOD_NONE && *m != METHOD_GSSAPI => {
                need(2)
            }
            // RFC 1929 §2: VER 1, ULEN, UNAME, PLEN, PASSWD; the status is VER, STATUS (0 = ok).
            (Stage::Auth, [1]) => Parsed::Incomplete,
            (Stage::Auth, [1, ulen, rest @ ..]) => match rest.get(usize::from(*ulen)) {
                Some(plen) => need(3 + usize::from(*ulen) + usize::from(*plen)),
                None => Parsed::Incomplete,
            },
            (Stage::AuthStatus, [1]) => Parsed::Incomplete,
            (Stage::AuthStatus, [1, 0, ..]) => need(2),
            (Stage::Request, _) if self.version == 4 => socks4_request(b),
            (Stage::Request, [5, ..]) => socks5_address_message(b, true),
            (Stage::Reply, _) if self.version == 4 => match b {
                [0, SOCKS4_GRANTED, ..] => need(8),
                [0] => Parsed::Incomplete,
                _ => Parsed::Fail,
            },
            (Stage::Reply, [5, ..]) => socks5_address_message(b, false),
            _ => Parsed::Fail,
        }
    }

    /// Parses what direction `i` holds; leaves the tunnel's first bytes there.
    fn advance(&mut self, i: usize) {
        loop {
            let stage = self.stage[i];
            if stage == Stage::Tunnel || stage == Stage::AwaitMethod {
                return;
            }
            let n = match self.parse(stage, &self.held[i]) {
                Parsed::Message(n) => n,
                Parsed::Incomplete => {
                    if self.held[i].len() > MAX_HANDSHAKE {
                        self.dead = true;
                    }
                    return;
                }
                Parsed::Fail => {
                    self.dead = true;
                    return;
                }
            };
            if stage == Stage::MethodChoice {
                self.method = Some(self.held[i][1]);
            }
            self.held[i].drain(..n);
            self.stage[i] = match stage {
                Stage::Greeting => Stage::AwaitMethod,
                Stage::MethodChoice if self.method == Some(METHOD_USERPASS) => Stage::AuthStatus,
                Stage::MethodChoice | Stage::AuthStatus => Stage::Reply,
                Stage::Auth => Stage::Request,
                Stage::Request | Stage::Reply => Stage::Tunnel,
                s => s,
            };
            // The proxy's choice says what the client sends next.
            if stage == Stage::MethodChoice && self.stage[0] == Stage::AwaitMethod {
                self.stage[0] = if self.method == Some(METHOD_USERPASS) {
                    Stage::Auth
                } else {
                    Stage::Request
                };
                self.advance(0);
            }
        }
    }

    /// Both directions are through the handshake.
    fn tunnel_open(&self) -> bool {
        self.stage == [Stage::Tunnel; 2]
    }

    /// Feeds the tunnelled bytes held so far to the tunnel's decoder.
    fn release(&mut self, at: &PacketCtx, cx: &mut L7Context<'_>, out: &mut Vec<L7Event>) {
        for (i, dir) in [StreamDir::ToServer, StreamDir::ToClient]
            .into_iter()
            .enumerate()
        {
            if self.stage[i] != Stage::Tunnel || self.held[i].is_empty() {
                continue;
            }
            let bytes = std::mem::take(&mut self.held[i]);
            self.tunnel()
                .on_event(dir, StreamEvent::Data(&bytes), at, cx, out);
        }
    }

    /// What the tunnel carries: detected on its first bytes, as a CONNECT tunnel's are.
    fn tunnel(&mut self) -> &mut Box<dyn StreamDecoder> {
        self.inner
            .get_or_insert_with(|| Box::new(ConnectTunnel::new()))
    }
}

/// A SOCKS4 request (VN 4, CD, DSTPORT, DSTIP, USERID NUL), or SOCKS4a's (DSTIP 0.0.0.x with
/// x ≠ 0, then the domain name NUL); only CONNECT goes on to a tunnel.
fn socks4_request(b: &[u8]) -> Parsed {
    if b.len() < 9 {
        return Parsed::Incomplete;
    }
    if b[0] != 4 || b[1] != CMD_CONNECT {
        return Parsed::Fail;
    }
    let Some(user_end) = b[8..].iter().position(|&c| c == 0).map(|p| 8 + p + 1) else {
        return Parsed::Incomplete;
    };
    let socks4a = b[4..7] == [0, 0, 0] && b[7] != 0;
    if !socks4a {
        return Parsed::Message(user_end);
    }
    match b[user_end..].iter().position(|&c| c == 0) {
        Some(p) => Parsed::Message(user_end + p + 1),
        None => Parsed::Incomplete,
    }
}

/// A SOCKS5 request (`request`: VER 5, CMD, RSV, ATYP, DST.ADDR, DST.PORT; only CONNECT goes
/// on) or reply (VER 5, REP, RSV, ATYP, BND.ADDR, BND.PORT; only REP 0, "succeeded", opens
/// the tunnel), RFC 1928 §4–§6. ATYP 1 is 4 address bytes, 4 is 16, 3 a length then a name.
fn socks5_address_message(b: &[u8], request: bool) -> Parsed {
    if b.len() < 5 {
        return Parsed::Incomplete;
    }
    let ok = if request {
        b[1] == CMD_CONNECT
    } else {
        b[1] == 0
    };
    if !ok || b[2] != 0 {
        return Parsed::Fail;
    }
    let addr = match b[3] {
        1 => 4,
        4 => 16,
        3 => 1 + usize::from(b[4]),
        _ => return Parsed::Fail,
    };
    let n = 4 + addr + 2;
    if b.len() >= n {
        Parsed::Message(n)
    } else {
        Parsed::Incomplete
    }
}

impl StreamDecoder for Socks {
    fn protocol(&self) -> L7Protocol {
        self.inner
            .as_ref()
            .map_or(L7Protocol::Http1, |d| d.protocol())
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
        let i = match dir {
            StreamDir::ToServer => 0,
            StreamDir::ToClient => 1,
        };
        if self.tunnel_open() && self.held[i].is_empty() {
            if let Some(d) = self.inner.as_mut() {
                d.on_event(dir, event, at, cx, out);
                return;
            }
        }
        match event {
            StreamEvent::Data(d) => {
                self.held[i].extend_from_slice(d);
                self.advance(i);
                if i == 1 {
                    // The proxy's answer may let the client's held request be read.
                    self.advance(0);
                }
                if !self.dead && self.tunnel_open() {
                    self.release(at, cx, out);
                }
            }
            // A gap inside the handshake: its framing is lost.
            StreamEvent::Gap { .. } if self.stage[i] != Stage::Tunnel => self.dead = true,
            // A gap or the end of a direction past the handshake: the tunnel's.
            other if self.stage[i] == Stage::Tunnel => {
                if self.tunnel_open() {
                    self.release(at, cx, out);
                }
                self.tunnel().on_event(dir, other, at, cx, out);
            }
            _ => {}
        }
    }

    fn finish(&mut self, now_ns: u64, cx: &mut L7Context<'_>, out: &mut Vec<L7Event>) {
        if let Some(d) = self.inner.as_mut() {
            d.finish(now_ns, cx, out);
        }
    }

    fn on_timeout(
        &mut self,
        now_ns: u64,
        request_timeout_ns: u64,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        if let Some(d) = self.inner.as_mut() {
            d.on_timeout(now_ns, request_timeout_ns, cx, out);
        }
    }

    fn is_dead(&self) -> bool {
        self.dead || self.inner.as_ref().is_some_and(|d| d.is_dead())
    }

    fn stopped_by_protocol_error(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|d| d.stopped_by_protocol_error())
    }

    fn buffered(&self) -> usize {
        self.held.iter().map(Vec::capacity).sum::<usize>()
            + self.inner.as_ref().map_or(0, |d| d.buffered())
    }

    fn take_upgrade(&mut self) -> Option<Box<dyn StreamDecoder>> {
        // Through the handshake with nothing held: the tunnelled protocol's decoder takes
        // the connection over (after its own upgrade, if it made one).
        if !self.tunnel_open() || self.held.iter().any(|h| !h.is_empty()) {
            return None;
        }
        let inner = self.inner.as_mut()?;
        if let Some(next) = inner.take_upgrade() {
            return Some(next);
        }
        self.inner.take()
    }
}
