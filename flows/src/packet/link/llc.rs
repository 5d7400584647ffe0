//! IEEE 802.2 LLC with a SNAP header (RFC 1042), as 802.11 and FDDI carry IP, and FDDI's
//! own frame header (LINKTYPE_FDDI).

use super::super::{be16, need, DecodeError};

/// RFC 1042: DSAP 0xAA, SSAP 0xAA, control 0x03 (UI), OUI 00-00-00, then the ethertype;
/// IEEE 802.1H's bridge-tunnel OUI 00-00-F8 carries an ethertype the same way.
pub(super) fn llc_snap(body: &[u8]) -> Result<(u16, &[u8]), DecodeError> {
    need("llc", body, 8)?;
    match body[..6] {
        [0xaa, 0xaa, 0x03, 0x00, 0x00, 0x00 | 0xf8] => Ok((be16(body, 6), &body[8..])),
        _ => Err(DecodeError::NotIpProtocol {
            layer: "llc",
            protocol: be16(body, 0),
        }),
    }
}

/// FDDI frame control of asynchronous and synchronous LLC frames (ANSI X3.139 / ISO 9314-2
/// §7.3.3; tcpdump `print-fddi.c`): bits CLFF are 0101 or 1101.
const FDDI_FC_CLFF: u8 = 0xf0;
const FDDI_FC_LLC_ASYNC: u8 = 0x50;
const FDDI_FC_LLC_SYNC: u8 = 0xd0;

/// LINKTYPE_FDDI (10): frame control(1) destination(6) source(6), then an LLC frame; other
/// frame classes (MAC, SMT, tokens) carry no IP and are not LLC.
pub(super) fn fddi(frame: &[u8]) -> Result<(u16, &[u8]), DecodeError> {
    need("fddi", frame, 13)?;
    match frame[0] & FDDI_FC_CLFF {
        FDDI_FC_LLC_ASYNC | FDDI_FC_LLC_SYNC => llc_snap(&frame[13..]),
        _ => Err(DecodeError::NotIpProtocol {
            layer: "fddi",
            protocol: u16::from(frame[0]),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::ETHERTYPE_IPV4;
    use super::*;

    #[test]
    fn fddi_llc_frames_carry_snap() {
        let mut f = vec![0x50];
        f.extend([1; 12]);
        f.extend([0xaa, 0xaa, 3, 0, 0, 0, 0x08, 0x00, 0x45]);
        assert_eq!(fddi(&f), Ok((ETHERTYPE_IPV4, &[0x45][..])));
        f[0] = 0x41; // SMT
        assert_eq!(fddi(&f).unwrap_err().reason(), "not_ip");
        f[0] = 0x51;
        f[13] = 0x42; // spanning tree LLC
        assert_eq!(fddi(&f).unwrap_err().reason(), "not_ip");
        assert_eq!(fddi(&f[..12]).unwrap_err().reason(), "truncated");
    }
}
