//! Frame decoding: link layer (Ethernet, VLAN, MPLS, PPPoE, Linux cooked, raw IP, BSD
//! loopback, NFLOG, PPP, Cisco HDLC, pflog, ipnet, PKTAP, 802.11, radiotap, PPI, FDDI) down to
//! TCP/UDP/ICMP.
//!
//! [`decode`] turns a captured frame into a borrowed [`Packet`] view: addresses, transport
//! header fields and a payload slice pointing into the frame. Nothing is copied. Every way a
//! frame can be rejected is a [`DecodeError`] variant with a stable [`DecodeError::reason`]
//! string for counters; no input makes it panic.
//!
//! The link layer is parsed by hand in [`link`] (each header is a few fixed fields, and SLL2,
//! NULL and NFLOG are not in etherparse 0.16); IP and transport headers go through etherparse's lax slicers, which
//! accept frames whose payload the capture cut short (the TC program snaps payload at N bytes).

use std::fmt;
use std::net::IpAddr;

use etherparse::{LaxIpSlice, TcpSlice, UdpSlice};
use serde::{Deserialize, Serialize};

mod link;
mod plain;
pub mod tunnel;
use link::{ETHERTYPE_IPV4, ETHERTYPE_IPV6};

/// How a captured frame begins, i.e. which header comes first.
///
/// Numbers and layouts are those of the LINKTYPE registry (draft-ietf-opsawg-pcaplinktype,
/// <https://www.tcpdump.org/linktypes.html>).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LinkType {
    /// Ethernet II, optionally with 802.1Q / 802.1ad (QinQ) tags.
    Ethernet,
    /// No link header: the frame starts with an IPv4 or IPv6 header.
    RawIp,
    /// Linux "cooked" capture v1 (16-byte header), as from `tcpdump -i any`.
    LinuxSll,
    /// Linux "cooked" capture v2 (20-byte header).
    LinuxSll2,
    /// BSD loopback (LINKTYPE_NULL 0): a 4-byte address family in the capturing host's byte
    /// order; either order is accepted (see `link::bsd_family_ethertype`).
    Null,
    /// OpenBSD loopback (LINKTYPE_LOOP 108): a 4-byte address family in network byte order.
    Loop,
    /// Linux netfilter log (LINKTYPE_NFLOG 239): a 4-byte header, then TLVs, the packet in
    /// the NFULA_PAYLOAD one.
    Nflog,
    /// PPP (LINKTYPE_PPP 9): RFC 1661 frames, with or without RFC 1662 address/control.
    Ppp,
    /// PPP in HDLC-like framing (LINKTYPE_PPP_HDLC 50, RFC 1662), or Cisco PPP with HDLC
    /// framing (RFC 1547 §4.3.1).
    PppHdlc,
    /// Cisco HDLC (LINKTYPE_C_HDLC 104): address, control, then an ethertype.
    CiscoHdlc,
    /// OpenBSD/FreeBSD pf log (LINKTYPE_PFLOG 117): a `struct pfloghdr` of its own length.
    Pflog,
    /// Solaris ipnet (LINKTYPE_IPNET 226): a 24-byte header naming the address family.
    Ipnet,
    /// Apple PKTAP (LINKTYPE_PKTAP 258): a header of its own length naming the inner DLT.
    Pktap,
    /// IEEE 802.11 without radio information (LINKTYPE_IEEE802_11 105).
    Ieee80211,
    /// IEEE 802.11 after a radiotap header (LINKTYPE_IEEE802_11_RADIOTAP 127).
    Radiotap,
    /// Per-Packet Information header then the frame of its DLT (LINKTYPE_PPI 192).
    Ppi,
    /// FDDI (LINKTYPE_FDDI 10): a 13-byte header, then 802.2 LLC/SNAP.
    Fddi,
    /// A link type the capture names that we do not decode (its LINKTYPE number): its frames
    /// are counted as `decode_unsupported_link_type`, never silently dropped.
    Unsupported(u32),
}

impl LinkType {
    /// Every link type [`decode`] reads (all but [`LinkType::Unsupported`]).
    pub const DECODED: [Self; 17] = [
        Self::Ethernet,
        Self::RawIp,
        Self::LinuxSll,
        Self::LinuxSll2,
        Self::Null,
        Self::Loop,
        Self::Nflog,
        Self::Ppp,
        Self::PppHdlc,
        Self::CiscoHdlc,
        Self::Pflog,
        Self::Ipnet,
        Self::Pktap,
        Self::Ieee80211,
        Self::Radiotap,
        Self::Ppi,
        Self::Fddi,
    ];

    /// Maps a pcap/pcapng LINKTYPE_* number to a link type we decode.
    ///
    /// 1 ETHERNET, 101 RAW (and the DLT values 12 and 14 that files written with the
    /// platform's DLT_RAW carry; see `link::raw_ip` for DLT 12 on OpenBSD), 228 IPV4,
    /// 229 IPV6, 113 LINUX_SLL, 276 LINUX_SLL2, 0 NULL, 108 LOOP, 239 NFLOG, 9 PPP,
    /// 50 PPP_HDLC, 104 C_HDLC, 117 PFLOG, 226 IPNET, 258 PKTAP, 105 IEEE802_11,
    /// 127 IEEE802_11_RADIOTAP, 192 PPI, 10 FDDI.
    pub fn from_pcap_linktype(linktype: u32) -> Option<Self> {
        match linktype {
            1 => Some(Self::Ethernet),
            101 | 12 | 14 | 228 | 229 => Some(Self::RawIp),
            113 => Some(Self::LinuxSll),
            276 => Some(Self::LinuxSll2),
            0 => Some(Self::Null),
            108 => Some(Self::Loop),
            239 => Some(Self::Nflog),
            9 => Some(Self::Ppp),
            50 => Some(Self::PppHdlc),
            104 => Some(Self::CiscoHdlc),
            117 => Some(Self::Pflog),
            226 => Some(Self::Ipnet),
            258 => Some(Self::Pktap),
            105 => Some(Self::Ieee80211),
            127 => Some(Self::Radiotap),
            192 => Some(Self::Ppi),
            10 => Some(Self::Fddi),
            _ => None,
        }
    }

    /// The link type of a capture file's header or interface, [`LinkType::Unsupported`] when
    /// we do not decode it (its frames are then counted, not lost).
    pub fn from_capture_header(linktype: u32) -> Self {
        Self::from_pcap_linktype(linktype).unwrap_or(Self::Unsupported(linktype))
    }

    /// The LINKTYPE_* number to write in a pcap file header for this link type.
    pub fn to_pcap_linktype(self) -> u32 {
        match self {
            Self::Ethernet => 1,
            Self::RawIp => 101,
            Self::LinuxSll => 113,
            Self::LinuxSll2 => 276,
            Self::Null => 0,
            Self::Loop => 108,
            Self::Nflog => 239,
            Self::Ppp => 9,
            Self::PppHdlc => 50,
            Self::CiscoHdlc => 104,
            Self::Pflog => 117,
            Self::Ipnet => 226,
            Self::Pktap => 258,
            Self::Ieee80211 => 105,
            Self::Radiotap => 127,
            Self::Ppi => 192,
            Self::Fddi => 10,
            Self::Unsupported(n) => n,
        }
    }

    /// The registry's name for a LINKTYPE number (without `LINKTYPE_`), for messages about
    /// captures we cannot decode; `None` for numbers not listed here.
    pub fn registry_name(linktype: u32) -> Option<&'static str> {
        Some(match linktype {
            0 => "NULL",
            1 => "ETHERNET",
            6 => "IEEE802_5",
            8 => "SLIP",
            9 => "PPP",
            10 => "FDDI",
            12 | 14 | 101 => "RAW",
            50 => "PPP_HDLC",
            51 => "PPP_ETHER",
            100 => "ATM_RFC1483",
            104 => "C_HDLC",
            105 => "IEEE802_11",
            107 => "FRELAY",
            108 => "LOOP",
            113 => "LINUX_SLL",
            117 => "PFLOG",
            119 => "IEEE802_11_PRISM",
            127 => "IEEE802_11_RADIOTAP",
            143 => "DOCSIS",
            147..=162 => {
                const USER: [&str; 16] = [
                    "USER0", "USER1", "USER2", "USER3", "USER4", "USER5", "USER6", "USER7",
                    "USER8", "USER9", "USER10", "USER11", "USER12", "USER13", "USER14", "USER15",
                ];
                USER[(linktype - 147) as usize]
            }
            163 => "IEEE802_11_AVS",
            192 => "PPI",
            195 => "IEEE802_15_4_WITHFCS",
            197 => "ERF",
            201 => "BLUETOOTH_HCI_H4_WITH_PHDR",
            220 => "USB_LINUX_MMAPPED",
            226 => "IPNET",
            227 => "CAN_SOCKETCAN",
            228 => "IPV4",
            229 => "IPV6",
            239 => "NFLOG",
            249 => "USBPCAP",
            253 => "NETLINK",
            258 => "PKTAP",
            276 => "LINUX_SLL2",
            _ => return None,
        })
    }
}

/// Which way a packet crossed the interface it was captured on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Received by the host on this interface.
    Ingress,
    /// Sent by the host on this interface.
    Egress,
    /// Not known (e.g. a pcap file without direction flags).
    #[default]
    Unknown,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ingress => "ingress",
            Self::Egress => "egress",
            Self::Unknown => "unknown",
        })
    }
}

/// What the capture knows about a frame besides its bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureMeta {
    /// Capture time, nanoseconds since the Unix epoch (or any monotonic origin; only
    /// differences matter to the engine).
    pub ts_ns: u64,
    /// Interface index the frame was seen on (0 when unknown).
    pub ifindex: u32,
    /// Ingress or egress on that interface.
    pub direction: Direction,
    /// Length of the frame on the wire; may exceed the captured bytes when snapped.
    pub orig_len: u32,
    /// Kernel socket cookie of the sending/receiving socket, when the capture had one.
    pub socket_cookie: Option<u64>,
}

/// TCP control bits, in their wire positions (RFC 9293 §3.1).
///
/// Serialises like Hubble's JSON: `{"SYN": true, "ACK": true}`.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: Self = Self(0x01);
    /// Synchronize sequence numbers.
    pub const SYN: Self = Self(0x02);
    /// Reset the connection.
    pub const RST: Self = Self(0x04);
    /// Push function.
    pub const PSH: Self = Self(0x08);
    /// Acknowledgment field is significant.
    pub const ACK: Self = Self(0x10);
    /// Urgent pointer field is significant.
    pub const URG: Self = Self(0x20);
    /// ECN-Echo (RFC 3168).
    pub const ECE: Self = Self(0x40);
    /// Congestion Window Reduced (RFC 3168).
    pub const CWR: Self = Self(0x80);

    /// Hubble's print order (cilium `TCPFlags` in flow.proto), paired with display names.
    const NAMES: [(Self, &'static str); 8] = [
        (Self::SYN, "SYN"),
        (Self::FIN, "FIN"),
        (Self::RST, "RST"),
        (Self::PSH, "PSH"),
        (Self::ACK, "ACK"),
        (Self::URG, "URG"),
        (Self::ECE, "ECE"),
        (Self::CWR, "CWR"),
    ];

    /// True when every bit of `other` is set in `self`.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// True when any of SYN, FIN or RST is set (the packets `L4Records::ControlOnly` keeps).
    pub fn is_control(self) -> bool {
        self.0 & (Self::SYN.0 | Self::FIN.0 | Self::RST.0) != 0
    }

    /// Names of the set flags in Hubble's order, e.g. `["SYN", "ACK"]`.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .into_iter()
            .filter(move |(f, _)| self.contains(*f))
            .map(|(_, n)| n)
    }
}

impl Serialize for TcpFlags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        for name in self.names() {
            map.serialize_entry(name, &true)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for TcpFlags {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = std::collections::BTreeMap::<String, bool>::deserialize(d)?;
        let mut flags = TcpFlags::default();
        for (name, set) in map {
            let Some((f, _)) = Self::NAMES.iter().find(|(_, n)| *n == name) else {
                return Err(serde::de::Error::custom(format!(
                    "unknown TCP flag {name:?}"
                )));
            };
            if set {
                flags = flags | *f;
            }
        }
        Ok(flags)
    }
}

impl std::ops::BitOr for TcpFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl fmt::Display for TcpFlags {
    /// Hubble's compact style: `SYN, ACK`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.names().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(name)?;
        }
        Ok(())
    }
}

impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TcpFlags({self})")
    }
}

/// TCP header fields the engine uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpInfo {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number of the first payload byte (or of the SYN).
    pub seq: u32,
    /// Acknowledgment number (meaningful when ACK is set).
    pub ack: u32,
    /// Control bits.
    pub flags: TcpFlags,
    /// Receive window, unscaled.
    pub window: u16,
    /// Window scale shift from the options of a SYN segment (RFC 7323 §2.2); `None` on other
    /// segments and on SYNs without the option.
    pub window_scale: Option<u8>,
    /// The timestamps option (RFC 7323 §3): `(TSval, TSecr)`, when the segment carries it.
    pub timestamps: Option<(u32, u32)>,
}

/// The transport layer of a decoded packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP segment.
    Tcp(TcpInfo),
    /// UDP datagram.
    Udp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
    },
    /// ICMP (v4) or ICMPv6 message.
    Icmp {
        /// True for ICMPv6.
        v6: bool,
        /// Message type.
        icmp_type: u8,
        /// Message code.
        code: u8,
    },
    /// Any other IP protocol; the payload is the IP payload.
    Other {
        /// IP protocol number (or IPv6 next header after extensions).
        protocol: u8,
    },
}

/// A decoded packet: a borrowed L3/L4 view of one captured frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Capture metadata passed to [`decode`].
    pub meta: CaptureMeta,
    /// Source IP address.
    pub src: IpAddr,
    /// Destination IP address.
    pub dst: IpAddr,
    /// Transport header.
    pub transport: Transport,
    /// Captured transport payload (may be shorter than on the wire when snapped).
    pub payload: &'a [u8],
    /// Bytes of the IP packet including its headers, per the IP header's length field.
    pub ip_len: u32,
    /// Transport payload length on the wire, per the IP length field; `>= payload.len()`.
    /// The difference is what the capture cut off; TCP reassembly treats it as a gap.
    pub payload_wire_len: u32,
}

impl Packet<'_> {
    /// `(src_port, dst_port)` for TCP and UDP.
    pub fn ports(&self) -> Option<(u16, u16)> {
        match self.transport {
            Transport::Tcp(t) => Some((t.src_port, t.dst_port)),
            Transport::Udp { src_port, dst_port } => Some((src_port, dst_port)),
            _ => None,
        }
    }

    /// Protocol name as Hubble prints it: "TCP", "UDP", "ICMPv4", "ICMPv6" or "IP".
    pub fn protocol_name(&self) -> &'static str {
        match self.transport {
            Transport::Tcp(_) => "TCP",
            Transport::Udp { .. } => "UDP",
            Transport::Icmp { v6: false, .. } => "ICMPv4",
            Transport::Icmp { v6: true, .. } => "ICMPv6",
            Transport::Other { .. } => "IP",
        }
    }

    /// IP protocol number of the transport (6, 17, 1, 58 or the raw value).
    pub fn ip_protocol(&self) -> u8 {
        match self.transport {
            Transport::Tcp(_) => 6,
            Transport::Udp { .. } => 17,
            Transport::Icmp { v6: false, .. } => 1,
            Transport::Icmp { v6: true, .. } => 58,
            Transport::Other { protocol } => protocol,
        }
    }

    /// TCP header fields, when this is a TCP segment.
    pub fn tcp(&self) -> Option<&TcpInfo> {
        match &self.transport {
            Transport::Tcp(t) => Some(t),
            _ => None,
        }
    }
}

/// Why a frame could not be decoded into a [`Packet`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame ends inside a header.
    #[error("frame truncated in {layer} header: need {need} bytes, have {have}")]
    Truncated {
        /// Layer whose header is cut short.
        layer: &'static str,
        /// Bytes that layer needs.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// The link layer carries something other than IPv4/IPv6 (ARP, LLDP, ...).
    #[error("frame carries ethertype {0:#06x}, not IPv4/IPv6")]
    NotIp(u16),
    /// More VLAN tags than we unwrap (QinQ is two).
    #[error("frame has more than {0} VLAN tags")]
    TooManyVlanTags(usize),
    /// The IP header is malformed (bad version, IHL, extension header, ...).
    #[error("malformed IP header: {0}")]
    BadIpHeader(String),
    /// An IP fragment: only the reassembled datagram can be decoded (RFC 791 §3.2, RFC 8200
    /// §4.5); the engine's `handle_frame` reassembles it.
    #[error("IP fragment from {src} to {dst}: decode the reassembled datagram")]
    Fragment {
        /// Source address.
        src: IpAddr,
        /// Destination address.
        dst: IpAddr,
    },
    /// The TCP header is malformed (data offset smaller than 5 words, ...).
    #[error("malformed TCP header: {0}")]
    BadTcpHeader(String),
    /// The capture's link type is one we do not decode.
    #[error("link type {0} is not decoded")]
    UnsupportedLinkType(u32),
    /// A loopback header (NULL, LOOP) names an address family other than IPv4/IPv6.
    #[error("loopback header names address family {0}, not IPv4/IPv6")]
    NotIpFamily(u32),
    /// NFLOG TLVs that do not walk in either byte order (a length or type out of range).
    #[error("NFLOG attributes are malformed in both byte orders")]
    BadNflogTlv,
    /// An NFLOG message without an NFULA_PAYLOAD attribute (logged without packet bytes).
    #[error("NFLOG message carries no packet (no NFULA_PAYLOAD attribute)")]
    NflogWithoutPayload,
    /// A link or tunnel header (PPP, PPPoE, 802.2 LLC, MPLS) names a protocol other than
    /// IPv4/IPv6 (LCP, IPCP, spanning tree, an MPLS pseudowire, ...).
    #[error("{layer} header names protocol {protocol:#06x}, not IPv4/IPv6")]
    NotIpProtocol {
        /// The header that names it.
        layer: &'static str,
        /// The protocol number it names.
        protocol: u16,
    },
    /// An IEEE 802.11 frame that carries no data (management, control, null data): its
    /// frame control's first byte.
    #[error("802.11 frame (frame control {0:#04x}) carries no data")]
    WlanNotData(u8),
    /// An IEEE 802.11 data frame with the Protected Frame bit: its body is encrypted.
    #[error("802.11 data frame is encrypted (Protected Frame bit set)")]
    WlanProtected,
    /// An IEEE 802.11 A-MSDU (several packets in one frame), not decoded.
    #[error("802.11 data frame is an A-MSDU aggregate")]
    WlanAggregate,
    /// More MPLS labels than we walk before the bottom of stack (RFC 3032 §2.1).
    #[error("MPLS label stack deeper than {0} labels")]
    TooManyMplsLabels(usize),
}

impl DecodeError {
    /// A stable snake_case name for counting this kind of failure.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Truncated { .. } => "truncated",
            Self::NotIp(_) => "not_ip",
            Self::TooManyVlanTags(_) => "too_many_vlan_tags",
            Self::BadIpHeader(_) => "bad_ip_header",
            Self::Fragment { .. } => "ip_fragment",
            Self::BadTcpHeader(_) => "bad_tcp_header",
            Self::UnsupportedLinkType(_) => "unsupported_link_type",
            Self::NotIpFamily(_) => "not_ip",
            Self::BadNflogTlv => "bad_nflog_tlv",
            Self::NflogWithoutPayload => "nflog_without_payload",
            Self::NotIpProtocol { .. } => "not_ip",
            Self::WlanNotData(_) => "wlan_not_data",
            Self::WlanProtected => "wlan_protected",
            Self::WlanAggregate => "wlan_aggregate",
            Self::TooManyMplsLabels(_) => "too_many_mpls_labels",
        }
    }
}

fn need(layer: &'static str, data: &[u8], n: usize) -> Result<(), DecodeError> {
    if data.len() < n {
        Err(DecodeError::Truncated {
            layer,
            need: n,
            have: data.len(),
        })
    } else {
        Ok(())
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Decodes one captured frame into a borrowed [`Packet`].
///
/// Call it once per frame from the capture; the engine's `handle_frame` calls it for you.
/// IP fragments are reported as [`DecodeError::Fragment`] (the engine reassembles them and
/// decodes the whole datagram with [`decode_ip`]).
/// For Linux cooked and NFLOG captures, an unknown direction (and interface) in `meta` is
/// filled from the link header.
pub fn decode(link: LinkType, frame: &[u8], meta: CaptureMeta) -> Result<Packet<'_>, DecodeError> {
    let (ip_bytes, meta) = ip_layer(link, frame, meta)?;
    decode_ip(ip_bytes, meta)
}

/// The IP packet a frame carries (its link header stripped), and `meta` completed from the
/// link header as [`decode`] does.
#[inline(always)] // keeps `decode` one function on the per-packet path, as before the split
pub fn ip_layer(
    link: LinkType,
    frame: &[u8],
    mut meta: CaptureMeta,
) -> Result<(&[u8], CaptureMeta), DecodeError> {
    let (ethertype, ip_bytes) = link::strip(link, frame, &mut meta)?;
    if ethertype != ETHERTYPE_IPV4 && ethertype != ETHERTYPE_IPV6 {
        // MPLS and PPPoE: only frames of their ethertypes take this branch.
        let (_, ip_bytes) = link::unwrap_encapsulation(ethertype, ip_bytes)?;
        return Ok((ip_bytes, meta));
    }
    Ok((ip_bytes, meta))
}

/// Decodes an IP packet (no link header) into a borrowed [`Packet`], like [`decode`].
#[inline]
pub fn decode_ip(ip_bytes: &[u8], meta: CaptureMeta) -> Result<Packet<'_>, DecodeError> {
    if let Some(packet) = plain::tcp_segment(ip_bytes, meta) {
        debug_assert_eq!(decode_ip_general(ip_bytes, meta), Ok(packet));
        return Ok(packet);
    }
    decode_ip_general(ip_bytes, meta)
}

/// [`decode_ip`] for every packet: IPv4 options, IPv6 extension headers, fragments, snapped
/// and lax lengths, every transport (the fast path in `plain` takes plain TCP segments).
fn decode_ip_general(ip_bytes: &[u8], meta: CaptureMeta) -> Result<Packet<'_>, DecodeError> {
    let (ip, ext_err) = LaxIpSlice::from_slice(ip_bytes).map_err(|e| match e {
        etherparse::err::ip::LaxHeaderSliceError::Len(l) => DecodeError::Truncated {
            layer: "ip",
            need: l.required_len,
            have: l.len,
        },
        etherparse::err::ip::LaxHeaderSliceError::Content(c) => {
            DecodeError::BadIpHeader(c.to_string())
        }
    })?;
    let src = ip.source_addr();
    let dst = ip.destination_addr();
    let ip_payload = ip.payload();
    // Before the extension header check: after a Fragment header that is not the first
    // fragment's, the bytes are data that would misread as headers (RFC 8200 §4.5).
    if ip_payload.fragmented {
        return Err(DecodeError::Fragment { src, dst });
    }
    if let Some((err, _layer)) = ext_err {
        return Err(DecodeError::BadIpHeader(err.to_string()));
    }
    // Length per the IP header (not the captured bytes) — the capture may snap the payload.
    let (ip_len, header_len) = match &ip {
        LaxIpSlice::Ipv4(v4) => {
            let h = v4.header();
            let hl = u32::from(h.ihl()) * 4;
            (u32::from(h.total_len()).max(hl), hl)
        }
        LaxIpSlice::Ipv6(v6) => (
            u32::from(v6.header().payload_length()) + 40,
            40 + v6.extensions().slice().len() as u32,
        ),
    };
    let ip_payload_wire = ip_len
        .saturating_sub(header_len)
        .max(ip_payload.payload.len() as u32);
    let data = ip_payload.payload;
    let protocol = ip_payload.ip_number.0;

    let (transport, payload, payload_wire_len) = match protocol {
        6 => {
            let tcp = TcpSlice::from_slice(data).map_err(|e| match e {
                etherparse::err::tcp::HeaderSliceError::Len(l) => DecodeError::Truncated {
                    layer: "tcp",
                    need: l.required_len,
                    have: l.len,
                },
                etherparse::err::tcp::HeaderSliceError::Content(c) => {
                    DecodeError::BadTcpHeader(c.to_string())
                }
            })?;
            let hdr = tcp.header_slice();
            let info = TcpInfo {
                src_port: tcp.source_port(),
                dst_port: tcp.destination_port(),
                seq: tcp.sequence_number(),
                ack: tcp.acknowledgment_number(),
                // Byte 13 holds the eight control bits (RFC 9293 §3.1, RFC 3168 §23.2).
                flags: TcpFlags(hdr[13]),
                window: tcp.window_size(),
                window_scale: if tcp.syn() {
                    syn_window_scale(&tcp)
                } else {
                    None
                },
                timestamps: tcp_timestamps(hdr),
            };
            let payload = tcp.payload();
            let wire = ip_payload_wire
                .saturating_sub(hdr.len() as u32)
                .max(payload.len() as u32);
            (Transport::Tcp(info), payload, wire)
        }
        17 => {
            let udp = UdpSlice::from_slice_lax(data).map_err(|l| DecodeError::Truncated {
                layer: "udp",
                need: l.required_len,
                have: l.len,
            })?;
            let payload = udp.payload();
            // UDP length field covers header + payload (RFC 768).
            let udp_len = u32::from(be16(udp.header_slice(), 4));
            let wire = udp_len.saturating_sub(8).max(payload.len() as u32);
            (
                Transport::Udp {
                    src_port: udp.source_port(),
                    dst_port: udp.destination_port(),
                },
                payload,
                wire,
            )
        }
        1 | 58 => {
            need("icmp", data, 4)?;
            let layer = Transport::Icmp {
                v6: protocol == 58,
                icmp_type: data[0],
                code: data[1],
            };
            (layer, &data[4..], ip_payload_wire.saturating_sub(4))
        }
        _ => (Transport::Other { protocol }, data, ip_payload_wire),
    };
    Ok(Packet {
        meta,
        src,
        dst,
        transport,
        payload,
        ip_len,
        payload_wire_len,
    })
}

/// The window scale shift a SYN offers (RFC 7323 §2.2); malformed options end the walk.
fn syn_window_scale(tcp: &TcpSlice<'_>) -> Option<u8> {
    tcp.options_iterator().find_map(|o| match o {
        Ok(etherparse::TcpOptionElement::WindowScale(shift)) => Some(shift),
        _ => None,
    })
}

/// The timestamps option of a TCP header (RFC 7323 §3: kind 8, length 10, TSval, TSecr).
/// Linux and most stacks put it first after two NOPs (checked without a walk); otherwise the
/// options are walked (RFC 9293 §3.1: kinds 0 and 1 are single bytes, the rest carry a
/// length), and a malformed length ends the walk.
fn tcp_timestamps(hdr: &[u8]) -> Option<(u32, u32)> {
    let opts = hdr.get(20..)?;
    let read = |o: &[u8]| {
        let v = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
        (v(2), v(6))
    };
    if opts.len() >= 12 && opts[..4] == [1, 1, 8, 10] {
        return Some(read(&opts[2..12]));
    }
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => return None,
            1 => i += 1,
            kind => {
                let len = usize::from(*opts.get(i + 1)?);
                if len < 2 || i + len > opts.len() {
                    return None;
                }
                if kind == 8 && len == 10 {
                    return Some(read(&opts[i..i + 10]));
                }
                i += len;
            }
        }
    }
    None
}

/// Frame builders shared by unit tests, property tests and benches.
#[cfg(test)]
pub(crate) mod build {
    use super::*;
    use etherparse::PacketBuilder;

    /// An Ethernet/IPv4/TCP frame.
    pub fn tcp_v4(
        src: [u8; 4],
        sport: u16,
        dst: [u8; 4],
        dport: u16,
        seq: u32,
        flags: TcpFlags,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(src, dst, 64)
            .tcp(sport, dport, seq, 1024);
        if flags.contains(TcpFlags::SYN) {
            b = b.syn();
        }
        if flags.contains(TcpFlags::ACK) {
            b = b.ack(1);
        }
        if flags.contains(TcpFlags::FIN) {
            b = b.fin();
        }
        if flags.contains(TcpFlags::RST) {
            b = b.rst();
        }
        if flags.contains(TcpFlags::PSH) {
            b = b.psh();
        }
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;
    use etherparse::PacketBuilder;

    fn meta() -> CaptureMeta {
        CaptureMeta::default()
    }

    #[test]
    fn ethernet_ipv4_tcp() {
        let f = tcp_v4(
            [198, 18, 0, 2],
            51234,
            [198, 18, 0, 1],
            80,
            7,
            TcpFlags::SYN,
            b"",
        );
        let p = decode(LinkType::Ethernet, &f, meta()).unwrap();
        assert_eq!(p.src, "198.18.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(p.ports(), Some((51234, 80)));
        assert_eq!(p.protocol_name(), "TCP");
        let t = p.tcp().unwrap();
        assert_eq!(t.seq, 7);
        assert_eq!(t.flags.to_string(), "SYN");
        assert_eq!(p.ip_len, 40);
    }

    /// RFC 7323 §2.2: the shift is read from SYN options only.
    #[test]
    fn timestamps_option_is_read() {
        // RFC 7323 §3: kind 8, length 10. Linux's layout (NOP NOP TS) is read without a walk;
        // any other position by walking the options; a bad length ends the walk.
        assert_eq!(
            tcp_timestamps(&[&[0u8; 20][..], &[1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 9]].concat()),
            Some((5, 9))
        );
        let walked = [
            &[0u8; 20][..],
            &[2, 4, 5, 180, 8, 10, 0, 0, 1, 0, 0, 0, 0, 7, 0, 0],
        ]
        .concat();
        assert_eq!(tcp_timestamps(&walked), Some((256, 7)));
        assert_eq!(
            tcp_timestamps(&[&[0u8; 20][..], &[2, 0, 8, 10]].concat()),
            None
        );
        assert_eq!(
            tcp_timestamps(&[&[0u8; 20][..], &[8, 10, 0, 0]].concat()),
            None
        );
        assert_eq!(tcp_timestamps(&[0u8; 20]), None);
        let f = tcp_v4([1, 1, 1, 1], 1, [2, 2, 2, 2], 2, 0, TcpFlags::ACK, b"x");
        let t = *decode(LinkType::Ethernet, &f, meta())
            .unwrap()
            .tcp()
            .unwrap();
        assert_eq!(t.timestamps, None);
    }

    #[test]
    fn syn_window_scale_is_read() {
        let frame = |syn: bool| {
            let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
                .ipv4([198, 18, 0, 2], [198, 18, 0, 1], 64)
                .tcp(51234, 80, 7, 502)
                .options(&[
                    etherparse::TcpOptionElement::MaximumSegmentSize(1460),
                    etherparse::TcpOptionElement::Noop,
                    etherparse::TcpOptionElement::WindowScale(7),
                ])
                .unwrap();
            let b = if syn { b.syn() } else { b.ack(1) };
            let mut out = Vec::new();
            b.write(&mut out, b"").unwrap();
            out
        };
        let f = frame(true);
        let t = *decode(LinkType::Ethernet, &f, meta())
            .unwrap()
            .tcp()
            .unwrap();
        assert_eq!((t.window, t.window_scale), (502, Some(7)));
        let f = frame(false);
        let t = *decode(LinkType::Ethernet, &f, meta())
            .unwrap()
            .tcp()
            .unwrap();
        assert_eq!(t.window_scale, None, "not a SYN");
        let f = tcp_v4([1, 1, 1, 1], 1, [2, 2, 2, 2], 2, 0, TcpFlags::SYN, b"");
        let t = *decode(LinkType::Ethernet, &f, meta())
            .unwrap()
            .tcp()
            .unwrap();
        assert_eq!(t.window_scale, None, "SYN without the option");
    }

    #[test]
    fn flags_display_in_hubble_order() {
        let f = TcpFlags::ACK | TcpFlags::SYN | TcpFlags::FIN | TcpFlags::PSH;
        assert_eq!(f.to_string(), "SYN, FIN, PSH, ACK");
        assert!(f.is_control());
        assert!(!TcpFlags::ACK.is_control());
        let json = serde_json::to_string(&(TcpFlags::SYN | TcpFlags::ACK)).unwrap();
        assert_eq!(json, r#"{"SYN":true,"ACK":true}"#);
        assert_eq!(
            serde_json::from_str::<TcpFlags>(&json).unwrap(),
            TcpFlags::SYN | TcpFlags::ACK
        );
    }

    #[test]
    fn qinq_ipv6_udp() {
        let mut out = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .double_vlan(
                etherparse::VlanId::try_new(10).unwrap(),
                etherparse::VlanId::try_new(20).unwrap(),
            )
            .ipv6(
                [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                64,
            )
            .udp(5353, 53)
            .write(&mut out, b"hello")
            .unwrap();
        // Rewrite the outer tag to 802.1ad so both tag types are exercised.
        out[12] = 0x88;
        out[13] = 0xa8;
        let p = decode(LinkType::Ethernet, &out, meta()).unwrap();
        assert_eq!(p.protocol_name(), "UDP");
        assert_eq!(p.payload, b"hello");
        assert_eq!(p.ports(), Some((5353, 53)));
        assert_eq!(p.payload_wire_len, 5);
    }

    #[test]
    fn ipv6_extension_headers_are_skipped() {
        let mut out = Vec::new();
        let (src, dst) = (
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        );
        PacketBuilder::ipv6(src, dst, 64)
            .tcp(40000, 80, 1, 100)
            .write(&mut out, b"GET")
            .unwrap();
        // Insert a Hop-by-Hop Options header (RFC 8200 §4.3): next=TCP, len=0, PadN.
        let mut v6 = out[..40].to_vec();
        v6[6] = 0; // next header: Hop-by-Hop
        let plen = u16::from_be_bytes([v6[4], v6[5]]) + 8;
        v6[4..6].copy_from_slice(&plen.to_be_bytes());
        v6.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
        v6.extend_from_slice(&out[40..]);
        let p = decode(LinkType::RawIp, &v6, meta()).unwrap();
        assert_eq!(p.protocol_name(), "TCP");
        assert_eq!(p.payload, b"GET");
        assert_eq!(p.ip_len, v6.len() as u32);
        assert_eq!(p.payload_wire_len, 3);
    }

    #[test]
    fn raw_ip_and_linux_cooked() {
        let eth = tcp_v4(
            [198, 18, 0, 2],
            1,
            [198, 18, 0, 1],
            2,
            0,
            TcpFlags::ACK,
            b"x",
        );
        let ip = &eth[14..];
        let p = decode(LinkType::RawIp, ip, meta()).unwrap();
        assert_eq!(p.payload, b"x");

        let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(ip);
        let p = decode(LinkType::LinuxSll, &sll, meta()).unwrap();
        assert_eq!(p.payload, b"x");
        assert_eq!(p.meta.direction, Direction::Ingress);
        sll[1] = 4; // PACKET_OUTGOING
        assert_eq!(
            decode(LinkType::LinuxSll, &sll, meta())
                .unwrap()
                .meta
                .direction,
            Direction::Egress
        );

        let mut sll2 = vec![
            0x08, 0x00, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0,
        ];
        sll2.extend_from_slice(ip);
        let p = decode(LinkType::LinuxSll2, &sll2, meta()).unwrap();
        assert_eq!(p.payload, b"x");
        assert_eq!((p.meta.ifindex, p.meta.direction), (3, Direction::Ingress));
    }

    #[test]
    fn snapped_payload_keeps_wire_length() {
        let f = tcp_v4(
            [198, 18, 0, 2],
            1,
            [198, 18, 0, 1],
            2,
            0,
            TcpFlags::ACK,
            &[b'a'; 100],
        );
        let p = decode(LinkType::Ethernet, &f[..f.len() - 60], meta()).unwrap();
        assert_eq!(p.payload.len(), 40);
        assert_eq!(p.payload_wire_len, 100);
    }

    #[test]
    fn fragments_are_reported() {
        let mut f = tcp_v4(
            [198, 18, 0, 2],
            1,
            [198, 18, 0, 1],
            2,
            0,
            TcpFlags::ACK,
            b"abc",
        );
        // Set "more fragments" in the IPv4 flags (offset 14 + 6).
        f[20] |= 0x20;
        let e = decode(LinkType::Ethernet, &f, meta()).unwrap_err();
        assert_eq!(e.reason(), "ip_fragment");
    }

    #[test]
    fn a_later_ipv6_fragment_is_a_fragment_whatever_its_data_looks_like() {
        // Fragment header naming Destination Options; this later fragment's data is not that
        // header, and must not be parsed as one (RFC 8200 §4.5).
        let mut p = vec![0x60, 0, 0, 0, 0, 16, 44, 64];
        p.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        p.extend_from_slice(&[60, 0, 0, 8, 0, 0, 0, 1]);
        p.extend_from_slice(&[0xff; 8]);
        let e = decode(LinkType::RawIp, &p, meta()).unwrap_err();
        assert_eq!(e.reason(), "ip_fragment");
    }

    #[test]
    fn bad_frames_are_counted_by_reason() {
        assert_eq!(
            decode(LinkType::Ethernet, &[0; 5], meta())
                .unwrap_err()
                .reason(),
            "truncated"
        );
        let mut arp = vec![0u8; 42];
        arp[12] = 0x08;
        arp[13] = 0x06;
        assert_eq!(
            decode(LinkType::Ethernet, &arp, meta()).unwrap_err(),
            DecodeError::NotIp(0x0806)
        );
        assert_eq!(
            decode(LinkType::RawIp, &[0x75, 0, 0, 0], meta())
                .unwrap_err()
                .reason(),
            "bad_ip_header"
        );
        let mut vlans = vec![0u8; 12];
        for _ in 0..6 {
            vlans.extend_from_slice(&[0x81, 0x00, 0, 1]);
        }
        vlans.extend_from_slice(&[0x08, 0x00]);
        assert_eq!(
            decode(LinkType::Ethernet, &vlans, meta())
                .unwrap_err()
                .reason(),
            "too_many_vlan_tags"
        );
    }

    #[test]
    fn pcap_linktypes() {
        assert_eq!(LinkType::from_pcap_linktype(1), Some(LinkType::Ethernet));
        assert_eq!(LinkType::from_pcap_linktype(113), Some(LinkType::LinuxSll));
        assert_eq!(LinkType::from_pcap_linktype(276), Some(LinkType::LinuxSll2));
        assert_eq!(LinkType::from_pcap_linktype(101), Some(LinkType::RawIp));
        assert_eq!(LinkType::from_pcap_linktype(147), None);
        for n in [12, 14, 228, 229] {
            assert_eq!(
                LinkType::from_pcap_linktype(n),
                Some(LinkType::RawIp),
                "{n}"
            );
        }
        assert_eq!(LinkType::from_pcap_linktype(0), Some(LinkType::Null));
        assert_eq!(LinkType::from_pcap_linktype(108), Some(LinkType::Loop));
        assert_eq!(LinkType::from_pcap_linktype(239), Some(LinkType::Nflog));
        assert_eq!(
            LinkType::from_capture_header(147),
            LinkType::Unsupported(147)
        );
        for link in LinkType::DECODED {
            let n = link.to_pcap_linktype();
            assert_eq!(LinkType::from_capture_header(n), link);
            assert!(LinkType::registry_name(n).is_some());
        }
        assert_eq!(LinkType::registry_name(150), Some("USER3"));
        assert_eq!(LinkType::registry_name(60000), None);
    }

    #[test]
    fn unsupported_link_types_are_an_error_not_an_empty_frame() {
        let e = decode(LinkType::Unsupported(147), &[0x45; 40], meta()).unwrap_err();
        assert_eq!(e, DecodeError::UnsupportedLinkType(147));
        assert_eq!(e.reason(), "unsupported_link_type");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200), link in 0..LinkType::DECODED.len()) {
            let link = LinkType::DECODED[link];
            let _ = decode(link, &bytes, CaptureMeta::default());
        }
    }
}
