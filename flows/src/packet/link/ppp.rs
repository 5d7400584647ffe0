//! PPP (RFC 1661), its HDLC-like framing (RFC 1662), Cisco HDLC and PPPoE sessions
//! (RFC 2516): each ends in a protocol number, mapped here to the ethertype of what follows.

use super::super::{be16, need, DecodeError};
use super::{ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_MPLS_MULTICAST, ETHERTYPE_MPLS_UNICAST};

/// RFC 1662 §3.1: the All-Stations address and the Unnumbered Information control field.
const PPP_ADDRESS: u8 = 0xff;
const PPP_CONTROL: u8 = 0x03;
/// Cisco HDLC unicast and broadcast addresses (LINKTYPE_C_HDLC; RFC 1547 §4.3.1).
const CISCO_HDLC_UNICAST: u8 = 0x0f;
const CISCO_HDLC_BROADCAST: u8 = 0x8f;

/// PPP protocol numbers (IANA PPP DLL protocol numbers; RFC 1332, RFC 5072, RFC 3032 §4.3).
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;
const PPP_MPLS_UNICAST: u16 = 0x0281;
const PPP_MPLS_MULTICAST: u16 = 0x0283;

/// LINKTYPE_PPP (9) and LINKTYPE_PPP_HDLC (50): a PPP frame, its address/control bytes
/// 0xFF 0x03 present (RFC 1662 §3.1) or omitted (Address-and-Control-Field-Compression,
/// RFC 1661 §6.6), then the protocol field. A frame starting with a Cisco HDLC address is
/// Cisco PPP with HDLC framing (RFC 1547 §4.3.1), which the PPP_HDLC entry allows.
pub(in crate::packet) fn ppp(frame: &[u8]) -> Result<(u16, &[u8]), DecodeError> {
    match frame {
        [CISCO_HDLC_UNICAST | CISCO_HDLC_BROADCAST, ..] => cisco_hdlc(frame),
        [PPP_ADDRESS, PPP_CONTROL, rest @ ..] => protocol(rest),
        _ => protocol(frame),
    }
}

/// LINKTYPE_C_HDLC (104): address(1) control(1) protocol(2), the protocol an ethertype.
pub(in crate::packet) fn cisco_hdlc(frame: &[u8]) -> Result<(u16, &[u8]), DecodeError> {
    need("cisco_hdlc", frame, 4)?;
    Ok((be16(frame, 2), &frame[4..]))
}

/// The PPP protocol field and what follows. RFC 1661 §2: protocol numbers are odd in their
/// last byte and even in the first, so a first byte that is odd is a whole field of one byte
/// (Protocol-Field-Compression, RFC 1661 §6.5).
fn protocol(body: &[u8]) -> Result<(u16, &[u8]), DecodeError> {
    need("ppp", body, 1)?;
    let (protocol, rest) = if body[0] & 1 == 1 {
        (u16::from(body[0]), &body[1..])
    } else {
        need("ppp", body, 2)?;
        (be16(body, 0), &body[2..])
    };
    let ethertype = match protocol {
        PPP_IPV4 => ETHERTYPE_IPV4,
        PPP_IPV6 => ETHERTYPE_IPV6,
        PPP_MPLS_UNICAST => ETHERTYPE_MPLS_UNICAST,
        PPP_MPLS_MULTICAST => ETHERTYPE_MPLS_MULTICAST,
        // LCP, IPCP, CHAP, compressed datagrams, ...: not IP we can read.
        protocol => {
            return Err(DecodeError::NotIpProtocol {
                layer: "ppp",
                protocol,
            })
        }
    };
    Ok((ethertype, rest))
}

/// RFC 2516 §4: ver(4 bits)=1 type(4 bits)=1, code 0x00 in the session stage, session id(2),
/// length(2) of the PPPoE payload, then the PPP protocol field (no address/control, §7).
pub(in crate::packet) fn pppoe_session(frame: &[u8]) -> Result<(u16, &[u8]), DecodeError> {
    need("pppoe", frame, 6)?;
    if frame[0] != 0x11 || frame[1] != 0 {
        return Err(DecodeError::NotIpProtocol {
            layer: "pppoe",
            protocol: be16(frame, 0),
        });
    }
    // The payload ends at its length; what follows is Ethernet padding. A snapped capture
    // may hold less.
    let len = usize::from(be16(frame, 4));
    let payload = &frame[6..(6 + len).min(frame.len())];
    protocol(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppp_with_and_without_address_control() {
        assert_eq!(
            ppp(&[0xff, 3, 0, 0x21, 0x45]),
            Ok((ETHERTYPE_IPV4, &[0x45][..]))
        );
        assert_eq!(ppp(&[0, 0x57, 0x60]), Ok((ETHERTYPE_IPV6, &[0x60][..])));
        // Protocol-Field-Compression: one byte.
        assert_eq!(ppp(&[0x21, 0x45]), Ok((ETHERTYPE_IPV4, &[0x45][..])));
        assert_eq!(
            ppp(&[0xff, 3, 0x57, 0x60]),
            Ok((ETHERTYPE_IPV6, &[0x60][..]))
        );
        assert_eq!(
            ppp(&[0xff, 3, 2, 0x81]),
            Ok((ETHERTYPE_MPLS_UNICAST, &[][..]))
        );
    }

    #[test]
    fn ppp_control_protocols_are_not_ip() {
        // LCP 0xc021.
        assert_eq!(
            ppp(&[0xff, 3, 0xc0, 0x21, 1, 1]),
            Err(DecodeError::NotIpProtocol {
                layer: "ppp",
                protocol: 0xc021
            })
        );
        assert_eq!(ppp(&[0xff, 3]).unwrap_err().reason(), "truncated");
        assert_eq!(ppp(&[0xff, 3, 0]).unwrap_err().reason(), "truncated");
    }

    #[test]
    fn cisco_hdlc_carries_an_ethertype() {
        assert_eq!(
            cisco_hdlc(&[0x0f, 0, 0x08, 0, 0x45]),
            Ok((ETHERTYPE_IPV4, &[0x45][..]))
        );
        // Cisco PPP with HDLC framing in a PPP_HDLC file.
        assert_eq!(
            ppp(&[0x8f, 0, 0x86, 0xdd, 0x60]),
            Ok((ETHERTYPE_IPV6, &[0x60][..]))
        );
        assert_eq!(cisco_hdlc(&[0x0f, 0, 8]).unwrap_err().reason(), "truncated");
    }

    #[test]
    fn pppoe_session_payload_ends_at_its_length() {
        // Length 3: protocol 0x0021 and one byte; two bytes of Ethernet padding after.
        let f = [0x11, 0, 0x12, 0x34, 0, 3, 0, 0x21, 0x45, 0, 0];
        assert_eq!(pppoe_session(&f), Ok((ETHERTYPE_IPV4, &[0x45][..])));
        // Discovery codes and other versions are not sessions.
        let padi = [0x11, 0x09, 0, 0, 0, 0];
        assert_eq!(pppoe_session(&padi).unwrap_err().reason(), "not_ip");
        assert_eq!(pppoe_session(&f[..4]).unwrap_err().reason(), "truncated");
    }
}
