//! Watches rtnetlink for interfaces that appear, come up, or go away, so capture can follow
//! them (a pod's veth is created long after the agent starts).

use std::{
    io,
    mem::size_of,
    os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd},
};

/// A change to the set of interfaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// RTM_NEWLINK: an interface exists (new, or its flags changed).
    New {
        /// Kernel index.
        index: u32,
        /// `IFF_UP` is set.
        up: bool,
    },
    /// RTM_DELLINK: the interface is gone.
    Deleted {
        /// Kernel index.
        index: u32,
    },
}

/// A non-blocking rtnetlink socket subscribed to RTMGRP_LINK.
#[derive(Debug)]
pub struct LinkWatcher {
    fd: OwnedFd,
}

const NLMSG_HDR: usize = 16;
const IFINFOMSG: usize = 16;

impl LinkWatcher {
    /// Opens the socket. Needs no privilege beyond being in the network namespace.
    pub fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: raw is a fresh, owned descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_nl is plain data; zeroed is a valid initial value.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        addr.nl_groups = libc::RTMGRP_LINK as u32;
        // SAFETY: addr is a valid sockaddr_nl and the length says so.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { fd })
    }

    /// Reads every pending message; an empty vector when none is waiting.
    pub fn poll_events(&self) -> io::Result<Vec<LinkEvent>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            // SAFETY: buf is writable for its length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock => Ok(out),
                    // ENOBUFS: the kernel dropped notifications. Report it so the caller rescans.
                    _ => Err(e),
                };
            }
            parse_messages(&buf[..n as usize], &mut out);
        }
    }
}

/// Parses a buffer of netlink messages, keeping the link events.
fn parse_messages(mut b: &[u8], out: &mut Vec<LinkEvent>) {
    while b.len() >= NLMSG_HDR {
        let len = u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize;
        let ty = u16::from_ne_bytes(b[4..6].try_into().unwrap());
        if len < NLMSG_HDR || len > b.len() {
            return;
        }
        let body = &b[NLMSG_HDR..len];
        if body.len() >= IFINFOMSG {
            // struct ifinfomsg { u8 family; u8 pad; u16 type; i32 index; u32 flags; u32 change; }
            let index = i32::from_ne_bytes(body[4..8].try_into().unwrap()) as u32;
            let flags = u32::from_ne_bytes(body[8..12].try_into().unwrap());
            match ty {
                libc::RTM_NEWLINK => out.push(LinkEvent::New {
                    index,
                    up: flags & 1 != 0,
                }),
                libc::RTM_DELLINK => out.push(LinkEvent::Deleted { index }),
                _ => {}
            }
        }
        let aligned = (len + 3) & !3;
        b = &b[aligned.min(b.len())..];
    }
}

impl AsFd for LinkWatcher {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for LinkWatcher {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(ty: u16, index: i32, flags: u32) -> Vec<u8> {
        let mut m = vec![0u8; NLMSG_HDR + IFINFOMSG + 2];
        let len = m.len() as u32;
        m[0..4].copy_from_slice(&len.to_ne_bytes());
        m[4..6].copy_from_slice(&ty.to_ne_bytes());
        m[NLMSG_HDR + 4..NLMSG_HDR + 8].copy_from_slice(&index.to_ne_bytes());
        m[NLMSG_HDR + 8..NLMSG_HDR + 12].copy_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&[0, 0]); // padding to 4
        m
    }

    #[test]
    fn parses_new_and_deleted_links() {
        let mut b = msg(libc::RTM_NEWLINK, 7, 1);
        b.extend(msg(libc::RTM_DELLINK, 8, 0));
        b.extend(msg(libc::RTM_NEWLINK, 9, 0));
        let mut out = Vec::new();
        parse_messages(&b, &mut out);
        assert_eq!(
            out,
            vec![
                LinkEvent::New { index: 7, up: true },
                LinkEvent::Deleted { index: 8 },
                LinkEvent::New {
                    index: 9,
                    up: false
                }
            ]
        );
    }

    #[test]
    fn truncated_message_is_ignored() {
        let b = msg(libc::RTM_NEWLINK, 7, 1);
        let mut out = Vec::new();
        parse_messages(&b[..20], &mut out);
        assert!(out.is_empty());
    }
}
