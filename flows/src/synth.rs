//! Synthetic captures: Ethernet/IP/TCP frames for a scripted conversation.
//!
//! Used by property tests, hostile-input tests and benches to make traffic without a network.
//! Frames are built with etherparse's `PacketBuilder`, so their checksums and lengths are real.

use std::net::{IpAddr, SocketAddr};

use etherparse::PacketBuilder;

use crate::packet::{CaptureMeta, Direction, TcpFlags};

/// One generated frame with its capture time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthFrame {
    /// Capture time.
    pub ts_ns: u64,
    /// Ethernet frame bytes.
    pub data: Vec<u8>,
    /// Ingress for client->server frames, egress for server->client (a server-side capture).
    pub direction: Direction,
}

impl SynthFrame {
    /// What a capture would say of this frame: its time and direction, whole, on ifindex 2,
    /// no socket cookie.
    pub fn capture_meta(&self) -> CaptureMeta {
        CaptureMeta {
            ts_ns: self.ts_ns,
            ifindex: 2,
            direction: self.direction,
            orig_len: self.data.len() as u32,
            socket_cookie: None,
        }
    }
}

/// A TCP conversation between a client and a server, frame by frame.
#[derive(Debug, Clone)]
pub struct TcpConversation {
    client: SocketAddr,
    server: SocketAddr,
    /// Next sequence number each side sends.
    client_next: u32,
    server_next: u32,
    ts_ns: u64,
    /// Time between frames.
    pub step_ns: u64,
    frames: Vec<SynthFrame>,
}

impl TcpConversation {
    /// A conversation with initial sequence numbers `client_isn` / `server_isn`, starting at
    /// `start_ns`. Both addresses must be the same IP version.
    pub fn new(
        client: SocketAddr,
        server: SocketAddr,
        client_isn: u32,
        server_isn: u32,
        start_ns: u64,
    ) -> Self {
        Self {
            client,
            server,
            client_next: client_isn,
            server_next: server_isn,
            ts_ns: start_ns,
            step_ns: 10_000,
            frames: Vec::new(),
        }
    }

    /// The sequence number the client sends next.
    pub fn client_next(&self) -> u32 {
        self.client_next
    }

    /// The sequence number the server sends next.
    pub fn server_next(&self) -> u32 {
        self.server_next
    }

    /// Builds one frame without recording it (for tests that reorder segments themselves).
    pub fn frame(
        &self,
        from_client: bool,
        seq: u32,
        ack: u32,
        flags: TcpFlags,
        payload: &[u8],
    ) -> Vec<u8> {
        let (src, dst) = if from_client {
            (self.client, self.server)
        } else {
            (self.server, self.client)
        };
        let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let ip = match (src.ip(), dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
            (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
            _ => panic!("mixed IP versions in one conversation"),
        };
        let mut tcp = ip.tcp(src.port(), dst.port(), seq, 65_535);
        if flags.contains(TcpFlags::SYN) {
            tcp = tcp.syn();
        }
        if flags.contains(TcpFlags::ACK) {
            tcp = tcp.ack(ack);
        }
        if flags.contains(TcpFlags::FIN) {
            tcp = tcp.fin();
        }
        if flags.contains(TcpFlags::RST) {
            tcp = tcp.rst();
        }
        if flags.contains(TcpFlags::PSH) {
            tcp = tcp.psh();
        }
        let mut out = Vec::with_capacity(tcp.size(payload.len()));
        tcp.write(&mut out, payload)
            .expect("writing to a Vec cannot fail");
        out
    }

    /// Records a frame from one side with the current sequence numbers, then advances them.
    fn emit(&mut self, from_client: bool, flags: TcpFlags, payload: &[u8]) {
        let (seq, ack) = if from_client {
            (self.client_next, self.server_next)
        } else {
            (self.server_next, self.client_next)
        };
        let data = self.frame(from_client, seq, ack, flags, payload);
        let consumed = payload.len() as u32
            + u32::from(flags.contains(TcpFlags::SYN))
            + u32::from(flags.contains(TcpFlags::FIN));
        if from_client {
            self.client_next = self.client_next.wrapping_add(consumed);
        } else {
            self.server_next = self.server_next.wrapping_add(consumed);
        }
        self.frames.push(SynthFrame {
            ts_ns: self.ts_ns,
            data,
            direction: if from_client {
                Direction::Ingress
            } else {
                Direction::Egress
            },
        });
        self.ts_ns += self.step_ns;
    }

    /// SYN, SYN-ACK, ACK.
    pub fn handshake(&mut self) {
        self.emit(true, TcpFlags::SYN, b"");
        self.emit(false, TcpFlags::SYN | TcpFlags::ACK, b"");
        self.emit(true, TcpFlags::ACK, b"");
    }

    /// The client sends `data` in segments of at most `mss` bytes.
    pub fn client_send(&mut self, data: &[u8], mss: usize) {
        for chunk in data.chunks(mss.max(1)) {
            self.emit(true, TcpFlags::ACK | TcpFlags::PSH, chunk);
        }
    }

    /// The server sends `data` in segments of at most `mss` bytes.
    pub fn server_send(&mut self, data: &[u8], mss: usize) {
        for chunk in data.chunks(mss.max(1)) {
            self.emit(false, TcpFlags::ACK | TcpFlags::PSH, chunk);
        }
    }

    /// FIN from the client, FIN from the server, final ACK.
    pub fn close(&mut self) {
        self.emit(true, TcpFlags::FIN | TcpFlags::ACK, b"");
        self.emit(false, TcpFlags::FIN | TcpFlags::ACK, b"");
        self.emit(true, TcpFlags::ACK, b"");
    }

    /// Appends an already built frame (e.g. from [`TcpConversation::frame`]) at the current time.
    pub fn push_raw(&mut self, data: Vec<u8>, direction: Direction) {
        self.frames.push(SynthFrame {
            ts_ns: self.ts_ns,
            data,
            direction,
        });
        self.ts_ns += self.step_ns;
    }

    /// The frames so far.
    pub fn frames(&self) -> &[SynthFrame] {
        &self.frames
    }

    /// Consumes the conversation, returning its frames.
    pub fn into_frames(self) -> Vec<SynthFrame> {
        self.frames
    }
}

/// A keep-alive HTTP/1.1 connection carrying `exchanges` GET requests, each answered with a
/// `body_len`-byte 200 response; `port` varies the client port so many connections differ.
pub fn http_connection(
    port: u16,
    exchanges: usize,
    body_len: usize,
    start_ns: u64,
) -> Vec<SynthFrame> {
    let client: SocketAddr = SocketAddr::new([198, 18, (port >> 8) as u8, port as u8].into(), port);
    let server: SocketAddr = "198.18.255.1:80".parse().expect("valid address");
    let mut c = TcpConversation::new(client, server, 1000 + u32::from(port), 5000, start_ns);
    c.handshake();
    let body = vec![b'x'; body_len];
    for i in 0..exchanges {
        let req = format!("GET /item/{i}?q=1 HTTP/1.1\r\nHost: bench.test\r\nUser-Agent: synth/1\r\nAccept: */*\r\n\r\n");
        c.client_send(req.as_bytes(), 1448);
        let mut resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {body_len}\r\n\r\n"
        )
        .into_bytes();
        resp.extend_from_slice(&body);
        c.server_send(&resp, 1448);
    }
    c.close();
    c.into_frames()
}
