//! IEEE 802.11 frames (IEEE Std 802.11-2020 §9), bare or after the radio headers monitor
//! mode captures add (radiotap, PPI): only unprotected data frames carry IP we can read.

use super::super::{need, CaptureMeta, DecodeError};
use super::{inner_link, llc::llc_snap, strip};

/// Frame Control, first byte: protocol version (bits 0-1), type (2-3), subtype (4-7)
/// (§9.2.4.1.1). Type 2 is Data (§9.2.4.1.3, Table 9-1).
const FC_TYPE_DATA: u8 = 2;
/// Data subtypes with this bit carry no frame body (Null, CF-Ack, CF-Poll, QoS Null, ...).
const SUBTYPE_NO_DATA: u8 = 0x4;
/// Data subtypes with this bit are QoS data: a QoS Control field follows the addresses.
const SUBTYPE_QOS: u8 = 0x8;
/// Frame Control, second byte (flags, §9.2.4.1.1).
const FLAG_TO_DS: u8 = 0x01;
const FLAG_FROM_DS: u8 = 0x02;
const FLAG_PROTECTED: u8 = 0x40;
/// +HTC/Order: in a QoS data frame, an HT Control field follows QoS Control (§9.2.4.1.10).
const FLAG_ORDER: u8 = 0x80;
/// QoS Control, first byte, bit 7: A-MSDU Present (§9.2.4.5.9).
const QOS_AMSDU_PRESENT: u8 = 0x80;
/// Frame control(2) duration(2) address 1-3 (18) sequence control(2).
const DATA_HEADER: usize = 24;

/// An 802.11 data frame's header, then its body's 802.2 LLC/SNAP header (RFC 1042, IEEE
/// 802.1H): the ethertype and the bytes after it. Management and control frames, data
/// frames without a body, encrypted ones and A-MSDU aggregates are skipped by reason.
pub(in crate::packet) fn data_frame(frame: &[u8]) -> Result<(u16, &[u8]), DecodeError> {
    // Control frames are shorter than a data header: the type is read first.
    need("ieee802_11", frame, 2)?;
    let (fc, flags) = (frame[0], frame[1]);
    let subtype = fc >> 4;
    if fc & 0x03 != 0 || (fc >> 2) & 0x03 != FC_TYPE_DATA || subtype & SUBTYPE_NO_DATA != 0 {
        return Err(DecodeError::WlanNotData(fc));
    }
    if flags & FLAG_PROTECTED != 0 {
        return Err(DecodeError::WlanProtected);
    }
    need("ieee802_11", frame, DATA_HEADER)?;
    let mut len = DATA_HEADER;
    // Address 4 is present when To DS and From DS are both set (§9.3.2.1.1).
    if flags & (FLAG_TO_DS | FLAG_FROM_DS) == FLAG_TO_DS | FLAG_FROM_DS {
        len += 6;
    }
    if subtype & SUBTYPE_QOS != 0 {
        need("ieee802_11", frame, len + 2)?;
        if frame[len] & QOS_AMSDU_PRESENT != 0 {
            return Err(DecodeError::WlanAggregate);
        }
        len += 2;
        if flags & FLAG_ORDER != 0 {
            len += 4;
        }
    }
    need("ieee802_11", frame, len)?;
    llc_snap(&frame[len..])
}

/// LINKTYPE_IEEE802_11_RADIOTAP (127): version(1)=0 pad(1) length(2, little-endian)
/// present(4) ... (<https://www.radiotap.org/>, "Radiotap header"); the 802.11 frame starts
/// at the length the header gives.
pub(in crate::packet) fn radiotap(frame: &[u8]) -> Result<(u16, &[u8]), DecodeError> {
    need("radiotap", frame, 8)?;
    let len = usize::from(u16::from_le_bytes([frame[2], frame[3]]));
    need("radiotap", frame, len.max(8))?;
    data_frame(&frame[len.max(8)..])
}

/// LINKTYPE_PPI (192): version(1) flags(1) length(2, little-endian) dlt(4, little-endian)
/// (Per-Packet Information Header Specification v1.0.10, §3.1); the frame of that DLT
/// (802.11 in practice) starts at the length the header gives.
pub(in crate::packet) fn ppi<'a>(
    frame: &'a [u8],
    meta: &mut CaptureMeta,
) -> Result<(u16, &'a [u8]), DecodeError> {
    need("ppi", frame, 8)?;
    let len = usize::from(u16::from_le_bytes([frame[2], frame[3]])).max(8);
    need("ppi", frame, len)?;
    let dlt = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
    strip(inner_link(dlt)?, &frame[len..], meta)
}

#[cfg(test)]
mod tests {
    use super::super::{ETHERTYPE_IPV4, ETHERTYPE_IPV6};
    use super::*;

    const SNAP_IPV4: [u8; 8] = [0xaa, 0xaa, 3, 0, 0, 0, 0x08, 0x00];

    /// An 802.11 header: frame control bytes, then zeroed fields up to `len`.
    fn header(fc: u8, flags: u8, len: usize) -> Vec<u8> {
        let mut h = vec![0; len];
        h[0] = fc;
        h[1] = flags;
        h
    }

    fn with_body(mut h: Vec<u8>, body: &[u8]) -> Vec<u8> {
        h.extend_from_slice(body);
        h
    }

    #[test]
    fn data_frames_of_each_header_length() {
        // Data (0x08), from the AP.
        let f = with_body(
            header(0x08, FLAG_FROM_DS, 24),
            &[SNAP_IPV4, [0x45; 8]].concat(),
        );
        assert_eq!(data_frame(&f), Ok((ETHERTYPE_IPV4, &[0x45; 8][..])));
        // QoS Data (0x88), four addresses, HT Control.
        let flags = FLAG_TO_DS | FLAG_FROM_DS | FLAG_ORDER;
        let f = with_body(header(0x88, flags, 24 + 6 + 2 + 4), &SNAP_IPV4);
        assert_eq!(data_frame(&f), Ok((ETHERTYPE_IPV4, &[][..])));
        // QoS Data to the AP, IPv6 under the 802.1H bridge-tunnel OUI.
        let f = with_body(
            header(0x88, FLAG_TO_DS, 26),
            &[0xaa, 0xaa, 3, 0, 0, 0xf8, 0x86, 0xdd, 0x60],
        );
        assert_eq!(data_frame(&f), Ok((ETHERTYPE_IPV6, &[0x60][..])));
    }

    #[test]
    fn other_frames_are_skipped_by_reason() {
        // Beacon (management), ACK (control), Null data, QoS Null.
        for fc in [0x80, 0xd4, 0x48, 0xc8] {
            let f = header(fc, 0, 10);
            assert_eq!(data_frame(&f), Err(DecodeError::WlanNotData(fc)), "{fc:#x}");
        }
        let f = with_body(header(0x08, FLAG_PROTECTED, 24), &[0; 16]);
        assert_eq!(data_frame(&f).unwrap_err().reason(), "wlan_protected");
        let mut f = with_body(header(0x88, 0, 26), &SNAP_IPV4);
        f[24] = QOS_AMSDU_PRESENT;
        assert_eq!(data_frame(&f).unwrap_err().reason(), "wlan_aggregate");
        // Spanning tree (LLC 42 42 03): not SNAP.
        let f = with_body(header(0x08, 0, 24), &[0x42, 0x42, 3, 0, 0, 0, 0, 0]);
        assert_eq!(data_frame(&f).unwrap_err().reason(), "not_ip");
        assert_eq!(data_frame(&f[..20]).unwrap_err().reason(), "truncated");
        assert_eq!(data_frame(&f[..28]).unwrap_err().reason(), "truncated");
    }

    #[test]
    fn radiotap_and_ppi_lengths_come_from_their_headers() {
        let wlan = with_body(
            header(0x08, FLAG_FROM_DS, 24),
            &[&SNAP_IPV4[..], &[0x45]].concat(),
        );
        // Radiotap: 12 bytes (present word says flags + rate).
        let f = [&[0, 0, 12, 0, 6, 0, 0, 0, 0x10, 2, 0, 0][..], &wlan].concat();
        assert_eq!(radiotap(&f), Ok((ETHERTYPE_IPV4, &[0x45][..])));
        assert_eq!(radiotap(&f[..10]).unwrap_err().reason(), "truncated");
        // PPI: 8 bytes plus a 4-byte field, DLT 105.
        let f = [&[0, 0, 12, 0, 105, 0, 0, 0, 2, 0, 0, 0][..], &wlan].concat();
        let mut meta = CaptureMeta::default();
        assert_eq!(ppi(&f, &mut meta), Ok((ETHERTYPE_IPV4, &[0x45][..])));
        let f = [&[0, 0, 8, 0, 192, 0, 0, 0][..], &wlan].concat();
        assert_eq!(
            ppi(&f, &mut meta),
            Err(DecodeError::UnsupportedLinkType(192))
        );
    }
}
