//! The one qdisc operation aya 0.14 lacks: deleting the clsact qdisc we added, over rtnetlink.

use std::{io, mem::size_of, os::fd::AsRawFd};

use crate::capture::owned;

const TC_H_CLSACT: u32 = 0xFFFF_FFF1;
const CLSACT_HANDLE: u32 = 0xFFFF_0000;

/// Deletes the clsact qdisc (and with it every filter under it) from `iface`.
pub fn delete_clsact(iface: &str) -> io::Result<()> {
    let ifindex = crate::iface::by_name(iface)?.index;
    // SAFETY: plain socket(2); checked by `owned`.
    let fd = owned(unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    })?;
    // nlmsghdr (16) + tcmsg (20) + TCA_KIND attribute "clsact\0" (4 + 7, padded to 12).
    let mut msg = Vec::with_capacity(48);
    let len: u32 = 16 + 20 + 12;
    msg.extend_from_slice(&len.to_ne_bytes());
    msg.extend_from_slice(&libc::RTM_DELQDISC.to_ne_bytes());
    msg.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // seq
    msg.extend_from_slice(&0u32.to_ne_bytes()); // pid
    msg.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
    msg.extend_from_slice(&(ifindex as i32).to_ne_bytes());
    msg.extend_from_slice(&CLSACT_HANDLE.to_ne_bytes());
    msg.extend_from_slice(&TC_H_CLSACT.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&11u16.to_ne_bytes());
    msg.extend_from_slice(&libc::TCA_KIND.to_ne_bytes());
    msg.extend_from_slice(b"clsact\0\0");
    debug_assert_eq!(msg.len(), len as usize);
    // SAFETY: sockaddr_nl zeroed is valid (destination: the kernel).
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as u16;
    // SAFETY: msg and addr are valid for the lengths given.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            0,
            (&addr as *const libc::sockaddr_nl).cast(),
            size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = [0u8; 1024];
    // SAFETY: buf is writable for its length.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    // NLMSG_ERROR carries an errno (0 = the ACK we asked for).
    if n >= 20 && u16::from_ne_bytes([buf[4], buf[5]]) == libc::NLMSG_ERROR as u16 {
        let errno = i32::from_ne_bytes(buf[16..20].try_into().expect("4 bytes"));
        if errno != 0 {
            return Err(io::Error::from_raw_os_error(-errno));
        }
    }
    Ok(())
}
