//! AF_PACKET sockets: the carrier for the socket-filter path, and the plain userspace path for
//! kernels or sandboxes where no eBPF program may be loaded at all.
//!
//! The plain path uses libc rather than pnet: pnet's datalink channel hides `sll_pkttype` and
//! `sll_ifindex`, without which we can neither tell egress from ingress nor drop the second
//! copy loopback delivers of every packet.

use std::{
    collections::HashMap,
    io,
    mem::size_of,
    os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd},
    time::{SystemTime, UNIX_EPOCH},
};

use crate::{
    capture::owned,
    error::{perm_hint, CaptureError},
    wire::{CaptureSource, L2Kind, PacketHdr, WireDirection, FLAG_TRUNCATED},
};

const ETH_P_ALL: u16 = 0x0003;
const PACKET_OUTGOING: u8 = 4;

/// Opens an AF_PACKET/SOCK_RAW socket for every protocol, bound to `ifindex` (0 = all).
pub fn open_packet_socket(ifindex: Option<u32>) -> Result<OwnedFd, CaptureError> {
    let sock_err = |what: &'static str| {
        let e = io::Error::last_os_error();
        CaptureError::Socket {
            what,
            hint: perm_hint(&e),
            source: e,
        }
    };
    // SAFETY: plain socket(2); checked by `owned`.
    let fd = owned(unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            i32::from(ETH_P_ALL.to_be()),
        )
    })
    .map_err(|_| sock_err("socket(AF_PACKET, SOCK_RAW)"))?;
    // SAFETY: sockaddr_ll zeroed is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ETH_P_ALL.to_be();
    sll.sll_ifindex = ifindex.unwrap_or(0) as i32;
    // SAFETY: sll is valid for its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc < 0 {
        return Err(sock_err("bind(AF_PACKET)"));
    }
    Ok(fd)
}

/// The plain AF_PACKET capture path: every frame is copied to userspace and read here.
#[derive(Debug)]
pub struct AfPacketCapture {
    fd: OwnedFd,
    snap: usize,
    buf: Vec<u8>,
    l2_of: fn(u32) -> L2Kind,
    /// Framing per interface index, asked of `l2_of` once per index: it reads sysfs, which
    /// must not happen per packet.
    l2_cache: HashMap<u32, L2Kind>,
}

impl AfPacketCapture {
    /// Opens the socket on `ifindex` (None = all interfaces), keeping `snap` bytes per frame.
    /// `l2_of` tells the framing of an interface index.
    pub fn open(
        ifindex: Option<u32>,
        snap: usize,
        l2_of: fn(u32) -> L2Kind,
    ) -> Result<Self, CaptureError> {
        let fd = open_packet_socket(ifindex)?;
        // A large receive buffer absorbs bursts between reads.
        let size: libc::c_int = 8 << 20;
        // SAFETY: setsockopt with an int option.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&size as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as u32,
            );
        }
        Ok(Self {
            fd,
            snap: snap.max(64),
            buf: vec![0u8; snap.max(64)],
            l2_of,
            l2_cache: HashMap::new(),
        })
    }

    /// Sets a receive timeout so a reading thread can notice shutdown.
    pub fn set_timeout(&self, ms: u64) -> io::Result<()> {
        let tv = libc::timeval {
            tv_sec: (ms / 1000) as _,
            tv_usec: ((ms % 1000) * 1000) as _,
        };
        // SAFETY: setsockopt with a timeval.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                size_of::<libc::timeval>() as u32,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Blocks for the next frame. `Ok(None)` on timeout. The header's timestamp is wall-clock
    /// nanoseconds (this path has no kernel monotonic stamp).
    pub fn recv(&mut self) -> io::Result<Option<(PacketHdr, &[u8])>> {
        // SAFETY: zeroed sockaddr_ll is valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut sl = size_of::<libc::sockaddr_ll>() as u32;
        // MSG_TRUNC makes recvfrom return the frame's real length even when it was cut.
        // SAFETY: buf and sll are valid for the lengths given.
        let n = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                self.buf.as_mut_ptr().cast(),
                self.snap,
                libc::MSG_TRUNC,
                (&mut sll as *mut libc::sockaddr_ll).cast(),
                &mut sl,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        let orig = n as usize;
        let cap = orig.min(self.snap);
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let ifindex = sll.sll_ifindex as u32;
        let hdr = PacketHdr {
            ts_ns: ts,
            socket_cookie: 0,
            ifindex,
            orig_len: orig as u32,
            cap_len: cap as u32,
            vlan_tci: 0,
            direction: if sll.sll_pkttype == PACKET_OUTGOING {
                WireDirection::Egress
            } else {
                WireDirection::Ingress
            },
            source: CaptureSource::AfPacket,
            flags: if cap < orig { FLAG_TRUNCATED } else { 0 },
            l2: *self
                .l2_cache
                .entry(ifindex)
                .or_insert_with(|| (self.l2_of)(ifindex)),
        };
        Ok(Some((hdr, &self.buf[..cap])))
    }
}

impl AsFd for AfPacketCapture {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
