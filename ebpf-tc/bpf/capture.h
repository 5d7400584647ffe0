/* Kernel/userspace contract for flowscope packet capture.
 *
 * The layout of every record the capture programs push into the `events` ring buffer, and of
 * the maps userspace writes. The Rust mirror is ebpf-tc/src/wire.rs; a unit test there checks
 * that sizes and offsets agree with the values asserted at the bottom of this file. Change both
 * together.
 */
#ifndef FLOWSCOPE_CAPTURE_H
#define FLOWSCOPE_CAPTURE_H

/* Most bytes one record may carry after its header. A power of two so the verifier can bound
 * the copy length with a mask; 8 KiB covers a full 1500-byte frame plus any snaplen a user
 * will sensibly ask for on a GSO super-packet. */
#define FS_MAX_CAPTURE 8192

/* Where the packet was seen. */
#define FS_DIR_INGRESS 0
#define FS_DIR_EGRESS 1

/* Which program produced the record (tells userspace how `data` starts). */
#define FS_SRC_TC 0
#define FS_SRC_SOCKET 1

/* record flags */
#define FS_F_COOKIE 1 /* socket_cookie is valid */
#define FS_F_TRUNCATED 2 /* cap_len < orig_len */
#define FS_F_VLAN_OFFLOAD 4 /* skb carried an offloaded VLAN tag (vlan_tci) */

/* Header of one ring record; `cap_len` bytes of the frame follow it. 40 bytes. */
struct fs_packet_hdr {
	__u64 ts_ns; /* bpf_ktime_get_ns (CLOCK_MONOTONIC) */
	__u64 socket_cookie; /* bpf_get_socket_cookie, 0 when none */
	__u32 ifindex;
	__u32 orig_len; /* skb->len: bytes on the wire from the L2 (or L3) header on */
	__u32 cap_len; /* bytes that follow this header */
	__u16 vlan_tci; /* offloaded VLAN tag, valid with FS_F_VLAN_OFFLOAD */
	__u8 direction; /* FS_DIR_* */
	__u8 source; /* FS_SRC_* */
	__u8 flags; /* FS_F_* */
	__u8 l2_kind; /* FS_L2_* the programs assumed for this ifindex */
	__u8 _pad[6];
};

/* Link-layer framing of an interface, written by userspace into `if_l2` (missing = ether). */
#define FS_L2_ETHER 0
#define FS_L2_NONE 1 /* raw IP: tun, wireguard, ... */

/* Filter switches in `filter_cfg` (array, one entry). A zero field means "no such filter". */
struct fs_filter_cfg {
	__u32 port_allow_on; /* keep only packets whose src or dst port is in `port_allow`
			      * (and IP fragments after the first: they carry no ports) */
	__u32 cidr_allow_on; /* keep only packets whose src or dst address is in `cidr4/6_allow` */
	__u32 snaplen; /* payload bytes to keep after the L4 header (0 = default 512) */
	/* Wake the reader once per this many bytes written while unread (0: on every record the
	 * reader has not caught up with, the kernel's default). The reader also polls on a timer,
	 * so a quiet ring is still read; batching cuts wakeups, and the agent's CPU with them. */
	__u32 wakeup_bytes;
};

/* Words of the `port_allow` / `port_deny` bitmaps (bit `port % 64` of word `port / 64`). */
#define FS_PORT_WORDS 1024
/* Words of the `if_raw_ip` bitmap: ifindexes below 64 times this are looked up there. */
#define FS_IF_BITMAP_WORDS 1024

/* LPM trie keys for the CIDR filters. */
struct fs_cidr4_key {
	__u32 prefixlen;
	__u8 addr[4];
};
struct fs_cidr6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* Indices of the per-CPU `counters` array. */
#define FS_CNT_SEEN 0 /* packets the programs ran on */
#define FS_CNT_CAPTURED 1 /* records written to the ring */
#define FS_CNT_RING_FULL 2 /* records lost because the ring was full */
#define FS_CNT_FILTERED 3 /* packets dropped by the in-kernel filters */
#define FS_CNT_LOAD_ERR 4 /* bpf_skb_load_bytes failed */
#define FS_CNT_BODY_CUT 5 /* TCP packets (GSO/GRO ones too) cut to their headers by a `body_skip` range */
#define FS_CNT_IDLE_WAKEUP 6 /* records that woke a reader gone idle (`reader_idle`) */
#define FS_CNT_MAX 7

/* Body skipping: the engine names ranges of a sender's sequence space whose bytes no decoder
 * reads (the rest of a long message body it knows the length of); a TCP segment lying wholly
 * in its sender's range is captured up to the end of its TCP header only. Userspace writes
 * `body_skip` and keeps `skip_live[0]` non-zero while it holds entries, so that with none the
 * programs skip the hash lookup. */
#define FS_SKIP_MAX 4096

/* One sender -> receiver pair: addresses as in the IP header (IPv4 in the first 4 bytes, the
 * rest zero), ports in host order. 40 bytes. */
struct fs_skip_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u8 family; /* 4 or 6 */
	__u8 _pad[3];
};

/* Segments with from_seq <= seq and seq + len <= until_seq (RFC 9293 sequence arithmetic,
 * modulo 2^32) are cut to their headers. */
struct fs_skip_range {
	__u32 from_seq;
	__u32 until_seq;
};

/* The layout the Rust mirror (src/wire.rs) assumes; its test reads these lines. */
_Static_assert(sizeof(struct fs_packet_hdr) == 40, "fs_packet_hdr size");
_Static_assert(__builtin_offsetof(struct fs_packet_hdr, ts_ns) == 0, "ts_ns");
_Static_assert(__builtin_offsetof(struct fs_packet_hdr, socket_cookie) == 8, "socket_cookie");
_Static_assert(__builtin_offsetof(struct fs_packet_hdr, ifindex) == 16, "ifindex");
_Static_assert(__builtin_offsetof(struct fs_packet_hdr, orig_len) == 20, "orig_len");
_Static_assert(__builtin_offsetof(struct fs_packet_hdr, cap_len) == 24, "cap_len");
_Static_assert(__builtin_offsetof(struct fs_packet_hdr, vlan_tci) == 28, "vlan_tci");
_Static_assert(__builtin_offsetof(struct fs_packet_hdr, direction) == 30, "direction");
_Static_assert(__builtin_offsetof(struct fs_packet_hdr, source) == 31, "source");
_Static_assert(__builtin_offsetof(struct fs_packet_hdr, flags) == 32, "flags");
_Static_assert(__builtin_offsetof(struct fs_packet_hdr, l2_kind) == 33, "l2_kind");
_Static_assert(sizeof(struct fs_filter_cfg) == 16, "fs_filter_cfg size");
_Static_assert(sizeof(struct fs_skip_key) == 40, "fs_skip_key size");
_Static_assert(__builtin_offsetof(struct fs_skip_key, daddr) == 16, "fs_skip_key daddr");
_Static_assert(__builtin_offsetof(struct fs_skip_key, sport) == 32, "fs_skip_key sport");
_Static_assert(__builtin_offsetof(struct fs_skip_key, dport) == 34, "fs_skip_key dport");
_Static_assert(__builtin_offsetof(struct fs_skip_key, family) == 36, "fs_skip_key family");
_Static_assert(sizeof(struct fs_skip_range) == 8, "fs_skip_range size");

#endif
