//! The host's network interfaces, read from sysfs: what to attach to and how its frames start.

use std::{fs, io, path::Path};

use crate::wire::L2Kind;

/// One network interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// Kernel name, e.g. `eth0`.
    pub name: String,
    /// Kernel index.
    pub index: u32,
    /// `IFF_UP` is set.
    pub up: bool,
    /// Framing of the packets TC and AF_PACKET see on it.
    pub l2: L2Kind,
}

const IFF_UP: u32 = 0x1;
/// `ARPHRD_NONE`: devices that carry bare IP packets (wireguard, tun in IFF_TUN mode).
const ARPHRD_NONE: u32 = 0xFFFE;
/// `ARPHRD_IPGRE`, `ARPHRD_TUNNEL`, `ARPHRD_TUNNEL6`, `ARPHRD_SIT`, `ARPHRD_IP6GRE`: L3 tunnels.
const ARPHRD_L3_TUNNELS: [u32; 5] = [778, 768, 769, 776, 823];
/// `ARPHRD_RAWIP`.
const ARPHRD_RAWIP: u32 = 519;

fn read_u32(path: &Path) -> io::Result<u32> {
    let s = fs::read_to_string(path)?;
    let s = s.trim();
    let v = match s.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    };
    v.map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

/// Maps an ARPHRD_* device type to the framing its packets have.
pub fn l2_kind_of_type(arphrd: u32) -> L2Kind {
    if arphrd == ARPHRD_NONE || arphrd == ARPHRD_RAWIP || ARPHRD_L3_TUNNELS.contains(&arphrd) {
        L2Kind::RawIp
    } else {
        L2Kind::Ethernet
    }
}

/// Reads one interface by name; `NotFound` if there is none.
pub fn by_name(name: &str) -> io::Result<Interface> {
    let dir = Path::new("/sys/class/net").join(name);
    if !dir.exists() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no network interface named {name:?} (see `ip link`)"),
        ));
    }
    Ok(Interface {
        name: name.to_string(),
        index: read_u32(&dir.join("ifindex"))?,
        up: read_u32(&dir.join("flags"))? & IFF_UP != 0,
        l2: l2_kind_of_type(read_u32(&dir.join("type"))?),
    })
}

/// Every interface of this network namespace, sorted by index. Interfaces that vanish while
/// being read are left out.
pub fn all() -> io::Result<Vec<Interface>> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/sys/class/net")? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        match by_name(&name) {
            Ok(i) => out.push(i),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    out.sort_by_key(|i| i.index);
    Ok(out)
}

/// The name of an interface index, if it still exists.
pub fn name_of(index: u32) -> Option<String> {
    let mut buf = [0u8; libc::IF_NAMESIZE];
    // SAFETY: buf has IF_NAMESIZE bytes as if_indextoname requires; it NUL-terminates on success.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr().cast()) };
    if p.is_null() {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Some(String::from_utf8_lossy(&buf[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_listed_with_ethernet_framing() {
        let lo = by_name("lo").unwrap();
        assert_eq!(lo.index, 1);
        assert_eq!(lo.l2, L2Kind::Ethernet);
        assert!(all().unwrap().iter().any(|i| i.name == "lo"));
        assert_eq!(name_of(1).as_deref(), Some("lo"));
    }

    #[test]
    fn missing_interface_is_not_found() {
        let e = by_name("fs-nope0").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("fs-nope0"));
    }

    #[test]
    fn l3_devices_are_raw_ip() {
        assert_eq!(l2_kind_of_type(1), L2Kind::Ethernet);
        assert_eq!(l2_kind_of_type(772), L2Kind::Ethernet);
        assert_eq!(l2_kind_of_type(65534), L2Kind::RawIp);
    }
}
