//! MPLS label stacks (RFC 3032): walked to the bottom of stack, the packet under them read
//! as IPv4 or IPv6 by its version nibble.

use super::super::{need, DecodeError};
use super::{ETHERTYPE_IPV4, ETHERTYPE_IPV6};

/// Real stacks hold a few labels (transport, service, entropy: RFC 6790); past this the
/// frame is garbage, not a stack.
const MAX_MPLS_LABELS: usize = 8;

/// RFC 3032 §2.1: each label stack entry is label(20 bits) TC(3) S(1) TTL(8); S is set on the
/// last entry. What follows the stack is not named by it (§3): IPv4 and IPv6 are told apart
/// by the first nibble, as routers doing ECMP do (RFC 4928 §2); anything else (a pseudowire
/// control word, whose first nibble is 0, RFC 4385 §3) is not IP.
pub(in crate::packet) fn strip(mut rest: &[u8]) -> Result<(u16, &[u8]), DecodeError> {
    for _ in 0..MAX_MPLS_LABELS {
        need("mpls", rest, 4)?;
        let bottom = rest[2] & 0x01 != 0;
        rest = &rest[4..];
        if bottom {
            return match rest.first().map(|b| b >> 4) {
                Some(4) => Ok((ETHERTYPE_IPV4, rest)),
                Some(6) => Ok((ETHERTYPE_IPV6, rest)),
                Some(nibble) => Err(DecodeError::NotIpProtocol {
                    layer: "mpls",
                    protocol: u16::from(nibble),
                }),
                None => Err(DecodeError::Truncated {
                    layer: "mpls",
                    need: 1,
                    have: 0,
                }),
            };
        }
    }
    Err(DecodeError::TooManyMplsLabels(MAX_MPLS_LABELS))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A label stack entry: label 16..., TTL 64, S as given.
    fn entry(label: u32, bottom: bool) -> [u8; 4] {
        (label << 12 | u32::from(bottom) << 8 | 64).to_be_bytes()
    }

    #[test]
    fn walks_to_the_bottom_of_stack() {
        let mut f = entry(100, false).to_vec();
        f.extend(entry(200, true));
        f.push(0x45);
        assert_eq!(strip(&f), Ok((ETHERTYPE_IPV4, &[0x45][..])));
        let mut f = entry(2, true).to_vec();
        f.push(0x60);
        assert_eq!(strip(&f), Ok((ETHERTYPE_IPV6, &[0x60][..])));
    }

    #[test]
    fn pseudowires_deep_stacks_and_truncation() {
        let mut f = entry(100, true).to_vec();
        f.extend([0, 0, 0, 0]); // RFC 4385 control word
        assert_eq!(strip(&f).unwrap_err().reason(), "not_ip");
        let deep: Vec<u8> = (0..9).flat_map(|l| entry(l, false)).collect();
        assert_eq!(strip(&deep), Err(DecodeError::TooManyMplsLabels(8)));
        assert_eq!(strip(&entry(1, false)).unwrap_err().reason(), "truncated");
        assert_eq!(strip(&entry(1, true)).unwrap_err().reason(), "truncated");
    }
}
