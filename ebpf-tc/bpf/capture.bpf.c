// SPDX-License-Identifier: GPL-2.0
/* flowscope packet capture.
 *
 * Two entry points share one body: TC classifiers on ingress and egress (attached with TCX or
 * clsact) and a socket filter for an AF_PACKET socket, used where TC can't attach. Each copies
 * the headers and the first `snaplen` payload bytes of every packet that passes the in-kernel
 * filters into the `events` ring buffer, behind a `struct fs_packet_hdr`. Nothing here changes a
 * packet or a verdict: TC programs return TC_ACT_UNSPEC (TCX_NEXT) so other programs still run,
 * and the socket filter returns 0 so the AF_PACKET socket itself never queues a byte.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "capture.h"
#include "ringbuf_wakeup.h"

char LICENSE[] SEC("license") = "GPL";

#define DEFAULT_SNAPLEN 512
#define ETH_P_8021Q_ 0x8100
#define ETH_P_8021AD_ 0x88A8
#define IP_FRAG_OFF_MASK 0x1FFF
#define TCP_FLAG_RST_ 0x04
#define TCP_FLAG_SYN_ 0x02

/* Records for userspace. Its size is set by the loader (`--ring-size`). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} events SEC(".maps");

/* Per-CPU counters, indexed by FS_CNT_*. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FS_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fs_filter_cfg);
} filter_cfg SEC(".maps");

/* Ports to keep (when port_allow_on) and ports never to capture (the agent's own traffic), as
 * bitmaps: bit `port % 64` of word `port / 64`. The verifier inlines an array lookup into a few
 * instructions; a hash lookup is a helper call and a jhash, paid twice per packet. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FS_PORT_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} port_allow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FS_PORT_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} port_deny SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fs_cidr4_key);
	__type(value, __u8);
} cidr4_allow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fs_cidr6_key);
	__type(value, __u8);
} cidr6_allow SEC(".maps");

/* ifindex -> FS_L2_*; written by userspace for every interface it attaches to. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} if_l2 SEC(".maps");

/* The same for ifindex < FS_IF_BITMAP_WORDS * 64 as a bitmap (bit set: FS_L2_NONE), so the
 * common case is an inlined array lookup rather than a hash lookup per packet. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FS_IF_BITMAP_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} if_raw_ip SEC(".maps");

/* Body skipping (capture.h): sender -> receiver ranges, and whether userspace holds any. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FS_SKIP_MAX);
	__type(key, struct fs_skip_key);
	__type(value, struct fs_skip_range);
} body_skip SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} skip_live SEC(".maps");

/* Set (non-zero) by the reader when it goes to sleep on its long idle timer with nothing
 * unread; the first record written after that wakes it at once and clears the flag. With
 * batched wakeups (`wakeup_bytes`) a quiet ring is otherwise read only on that timer, so the
 * first records after a quiet spell waited up to the reader's idle poll (200 ms) in the ring.
 * One wakeup per quiet spell, not per record: under steady traffic the reader never sets it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} reader_idle SEC(".maps");

/* Per-CPU staging area: the record is assembled here, then copied into the ring in one call
 * (bpf_ringbuf_reserve needs a constant size; records vary with the packet). */
struct scratch {
	struct fs_packet_hdr hdr;
	__u8 data[FS_MAX_CAPTURE];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch_buf SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);
	if (v)
		*v += 1;
}

static __always_inline int bit_set(void *map, __u32 bit)
{
	__u32 word = bit >> 6;
	__u64 *w = bpf_map_lookup_elem(map, &word);
	return w && ((*w >> (bit & 63)) & 1);
}

static __always_inline int port_in(void *map, __u16 sport, __u16 dport)
{
	return bit_set(map, sport) || bit_set(map, dport);
}

/* How frames on `ifindex` start (FS_L2_*). */
static __always_inline __u8 l2_of(__u32 ifindex)
{
	if (ifindex < FS_IF_BITMAP_WORDS * 64)
		return bit_set(&if_raw_ip, ifindex) ? FS_L2_NONE : FS_L2_ETHER;
	__u8 *l2p = bpf_map_lookup_elem(&if_l2, &ifindex);
	return l2p ? *l2p : FS_L2_ETHER;
}

struct l3l4 {
	__u32 payload_off; /* first byte after the L4 header (or after L3 when no ports) */
	__u16 sport, dport; /* host order, 0 when the packet has none */
	__u8 family; /* 4, 6 or 0 */
	__u8 has_ports;
	__u8 later_fragment; /* an IP fragment other than the first: no L4 header, no ports */
	__u8 tcp; /* a TCP segment whose header was read: `seq` and `tcp_flags` are valid */
	__u8 tcp_flags; /* TCP header byte 13 (CWR ... FIN) */
	__u32 seq; /* TCP sequence number, host order */
	__u32 ip_end; /* offset of the IP datagram's end by its length field (0: unknown) */
	__u8 saddr[16], daddr[16];
};

/* Walks L2 -> L3 -> L4 far enough to find the ports and where the payload starts.
 * Returns 0 when the packet is not IP (it is still captured, with no payload budget). */
static __always_inline int parse(struct __sk_buff *skb, __u8 l2, struct l3l4 *out)
{
	__u32 off = 0;
	__u16 proto = skb->protocol; /* network order */

	if (l2 == FS_L2_ETHER) {
		struct ethhdr eth;
		if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)))
			return 0;
		proto = eth.h_proto;
		off = sizeof(eth);
		/* Up to two tags (802.1ad outer, 802.1Q inner) when not offloaded to vlan_tci. */
#pragma unroll
		for (int i = 0; i < 2; i++) {
			if (proto != bpf_htons(ETH_P_8021Q_) && proto != bpf_htons(ETH_P_8021AD_))
				break;
			__u16 inner[2];
			if (bpf_skb_load_bytes(skb, off, inner, sizeof(inner)))
				return 0;
			proto = inner[1];
			off += 4;
		}
	}
	out->payload_off = off;

	__u8 l4proto;
	__u32 l4off;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;
		if (bpf_skb_load_bytes(skb, off, &ip, sizeof(ip)))
			return 0;
		out->family = 4;
		__builtin_memcpy(out->saddr, &ip.saddr, 4);
		__builtin_memcpy(out->daddr, &ip.daddr, 4);
		l4off = off + ip.ihl * 4;
		out->payload_off = l4off;
		out->ip_end = off + bpf_ntohs(ip.tot_len);
		/* Non-first fragments carry no L4 header (RFC 791): capture them without ports. */
		if (bpf_ntohs(ip.frag_off) & IP_FRAG_OFF_MASK) {
			out->later_fragment = 1;
			return 1;
		}
		l4proto = ip.protocol;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		if (bpf_skb_load_bytes(skb, off, &ip6, sizeof(ip6)))
			return 0;
		out->family = 6;
		__builtin_memcpy(out->saddr, &ip6.saddr, 16);
		__builtin_memcpy(out->daddr, &ip6.daddr, 16);
		l4off = off + sizeof(ip6);
		l4proto = ip6.nexthdr;
		out->ip_end = l4off + bpf_ntohs(ip6.payload_len);
		/* Skip the common extension headers (RFC 8200 §4); a bounded walk. */
#pragma unroll
		for (int i = 0; i < 4; i++) {
			if (l4proto != IPPROTO_HOPOPTS && l4proto != IPPROTO_ROUTING &&
			    l4proto != IPPROTO_DSTOPTS && l4proto != IPPROTO_FRAGMENT)
				break;
			__u8 ext[2];
			if (bpf_skb_load_bytes(skb, l4off, ext, sizeof(ext)))
				return 1;
			if (l4proto == IPPROTO_FRAGMENT) {
				__u16 fo;
				if (bpf_skb_load_bytes(skb, l4off + 2, &fo, sizeof(fo)))
					return 1;
				l4proto = ext[0];
				l4off += 8;
				if (bpf_ntohs(fo) & 0xFFF8) {
					out->payload_off = l4off;
					out->later_fragment = 1;
					return 1;
				}
				continue;
			}
			l4proto = ext[0];
			l4off += (ext[1] + 1) * 8;
		}
		out->payload_off = l4off;
	} else {
		return 0;
	}

	if (l4proto == IPPROTO_TCP) {
		__u8 tcp[14];
		if (bpf_skb_load_bytes(skb, l4off, tcp, sizeof(tcp)))
			return 1;
		out->sport = ((__u16)tcp[0] << 8) | tcp[1];
		out->dport = ((__u16)tcp[2] << 8) | tcp[3];
		out->has_ports = 1;
		out->tcp = 1;
		out->tcp_flags = tcp[13];
		out->seq = ((__u32)tcp[4] << 24) | ((__u32)tcp[5] << 16) | ((__u32)tcp[6] << 8) | tcp[7];
		out->payload_off = l4off + (tcp[12] >> 4) * 4;
	} else if (l4proto == IPPROTO_UDP) {
		__u8 udp[4];
		if (bpf_skb_load_bytes(skb, l4off, udp, sizeof(udp)))
			return 1;
		out->sport = ((__u16)udp[0] << 8) | udp[1];
		out->dport = ((__u16)udp[2] << 8) | udp[3];
		out->has_ports = 1;
		out->payload_off = l4off + 8;
	} else {
		/* ICMP and others: keep their header (up to 64 bytes) as "payload". */
		out->payload_off = l4off + 64;
	}
	return 1;
}

static __always_inline int cidr_match(const struct l3l4 *p)
{
	if (p->family == 4) {
		struct fs_cidr4_key k = { .prefixlen = 32 };
		__builtin_memcpy(k.addr, p->saddr, 4);
		if (bpf_map_lookup_elem(&cidr4_allow, &k))
			return 1;
		__builtin_memcpy(k.addr, p->daddr, 4);
		return bpf_map_lookup_elem(&cidr4_allow, &k) != 0;
	}
	if (p->family == 6) {
		struct fs_cidr6_key k = { .prefixlen = 128 };
		__builtin_memcpy(k.addr, p->saddr, 16);
		if (bpf_map_lookup_elem(&cidr6_allow, &k))
			return 1;
		__builtin_memcpy(k.addr, p->daddr, 16);
		return bpf_map_lookup_elem(&cidr6_allow, &k) != 0;
	}
	return 0;
}

/* Whether a TCP segment with `payload_len` bytes after its header lies wholly inside a range
 * userspace named for its sender (see `body_skip`): then its headers are enough. Called for
 * segments with payload, and for SYNs and RSTs (which end the sender's range). */
static __always_inline int body_cut(const struct l3l4 *p, __u32 payload_len)
{
	__u32 zero = 0;
	__u32 *live = bpf_map_lookup_elem(&skip_live, &zero);
	if (!live || !*live)
		return 0;
	struct fs_skip_key k = {};
	__builtin_memcpy(k.saddr, p->saddr, 16);
	__builtin_memcpy(k.daddr, p->daddr, 16);
	k.sport = p->sport;
	k.dport = p->dport;
	k.family = p->family;
	struct fs_skip_range *r = bpf_map_lookup_elem(&body_skip, &k);
	if (!r)
		return 0;
	/* A SYN or RST from the sender starts or ends a connection on this tuple: the range was
	 * the old one's, and a new connection's bytes must not fall in it (RFC 9293 §3.4 port
	 * reuse). Userspace withdraws it too, later; this closes the gap before it reads. */
	if (p->tcp_flags & (TCP_FLAG_SYN_ | TCP_FLAG_RST_)) {
		bpf_map_delete_elem(&body_skip, &k);
		return 0;
	}
	if (!payload_len)
		return 0;
	__u32 end = p->seq + payload_len;
	return (__s32)(p->seq - r->from_seq) >= 0 && (__s32)(r->until_seq - end) >= 0;
}

/* Returns 1 when the packet was captured or dropped by a filter, 0 otherwise. */
static __always_inline void capture(struct __sk_buff *skb, __u8 dir, __u8 source)
{
	__u32 zero = 0;
	count(FS_CNT_SEEN);

	__u32 ifindex = skb->ifindex;
	__u8 l2 = l2_of(ifindex);

	struct l3l4 p = {};
	int ip = parse(skb, l2, &p);

	struct fs_filter_cfg *cfg = bpf_map_lookup_elem(&filter_cfg, &zero);
	__u32 snaplen = DEFAULT_SNAPLEN;
	__u32 wakeup_bytes = 0;
	if (cfg) {
		if (cfg->snaplen)
			snaplen = cfg->snaplen;
		wakeup_bytes = cfg->wakeup_bytes;
		/* A later fragment has no ports to test (RFC 791 §3.2, RFC 8200 §4.5): keep it, so
		 * that userspace can reassemble a datagram whose first fragment passed. Those of
		 * other datagrams never complete there and are dropped and counted
		 * (ip_frag_dropped_timeout); dropping them here would lose every fragmented
		 * datagram on the allowed ports. */
		if (cfg->port_allow_on && !p.later_fragment &&
		    !(p.has_ports && port_in(&port_allow, p.sport, p.dport))) {
			count(FS_CNT_FILTERED);
			return;
		}
		if (cfg->cidr_allow_on && !(ip && cidr_match(&p))) {
			count(FS_CNT_FILTERED);
			return;
		}
	}
	if (p.has_ports && port_in(&port_deny, p.sport, p.dport)) {
		count(FS_CNT_FILTERED);
		return;
	}

	struct scratch *s = bpf_map_lookup_elem(&scratch_buf, &zero);
	if (!s)
		return;

	__u32 len = skb->len;
	__u32 cap = ip ? p.payload_off + snaplen : 128;
	/* The payload by the IP length (link padding is not payload); a length field of 0 (IPv4
	 * BIG TCP, RFC 2675 jumbograms) or past the packet: by the packet's. */
	__u32 ip_end = p.ip_end > p.payload_off && p.ip_end <= len ? p.ip_end : len;
	__u32 payload_len = ip_end > p.payload_off ? ip_end - p.payload_off : 0;
	if (p.tcp && (payload_len || (p.tcp_flags & (TCP_FLAG_SYN_ | TCP_FLAG_RST_))) &&
	    body_cut(&p, payload_len)) {
		cap = p.payload_off;
		count(FS_CNT_BODY_CUT);
	}
	if (cap > len)
		cap = len;
	if (cap > FS_MAX_CAPTURE)
		cap = FS_MAX_CAPTURE;
	if (cap == 0)
		return;
	/* Make 1 <= cap <= FS_MAX_CAPTURE visible to the verifier in the very register passed to
	 * bpf_skb_load_bytes: the mask is opaque to clang, so it can't check a copy instead. */
	cap -= 1;
	asm volatile("%0 &= %1" : "+r"(cap) : "i"(FS_MAX_CAPTURE - 1));
	cap += 1;

	s->hdr.ts_ns = bpf_ktime_get_ns();
	/* At TC egress skb->sk is the sending socket. A socket filter runs on the AF_PACKET tap's
	 * copy, whose socket is not the sender's: its cookie would mislead, so leave it out. */
	s->hdr.socket_cookie = source == FS_SRC_TC ? bpf_get_socket_cookie(skb) : 0;
	s->hdr.ifindex = ifindex;
	s->hdr.orig_len = len;
	s->hdr.cap_len = cap;
	s->hdr.vlan_tci = skb->vlan_present ? skb->vlan_tci : 0;
	s->hdr.direction = dir;
	s->hdr.source = source;
	s->hdr.flags = (s->hdr.socket_cookie ? FS_F_COOKIE : 0) | (cap < len ? FS_F_TRUNCATED : 0) |
		       (skb->vlan_present ? FS_F_VLAN_OFFLOAD : 0);
	s->hdr.l2_kind = l2;

	if (bpf_skb_load_bytes(skb, 0, s->data, cap)) {
		count(FS_CNT_LOAD_ERR);
		return;
	}
	__u32 size = sizeof(s->hdr) + cap;
	__u64 flags = 0;
	int idle_wakeup = 0;
	if (wakeup_bytes) {
		flags = fs_wakeup_flags(bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA), size,
					wakeup_bytes);
		/* Two CPUs may both see the flag set and both wake the reader: harmless. A plain
		 * store, not an atomic exchange, which needs 5.12 (ring buffers need 5.8). */
		__u32 *idle = bpf_map_lookup_elem(&reader_idle, &zero);
		if (idle && *idle) {
			*idle = 0;
			flags = BPF_RB_FORCE_WAKEUP;
			idle_wakeup = 1;
		}
	}
	if (bpf_ringbuf_output(&events, s, size, flags)) {
		count(FS_CNT_RING_FULL);
		return;
	}
	count(FS_CNT_CAPTURED);
	if (idle_wakeup)
		count(FS_CNT_IDLE_WAKEUP);
}

SEC("classifier")
int fs_tc_ingress(struct __sk_buff *skb)
{
	capture(skb, FS_DIR_INGRESS, FS_SRC_TC);
	return TC_ACT_UNSPEC;
}

SEC("classifier")
int fs_tc_egress(struct __sk_buff *skb)
{
	capture(skb, FS_DIR_EGRESS, FS_SRC_TC);
	return TC_ACT_UNSPEC;
}

/* For an AF_PACKET socket bound to every interface (or one). pkt_type tells the direction:
 * PACKET_OUTGOING is a copy of a packet this host sends. */
SEC("socket")
int fs_socket(struct __sk_buff *skb)
{
	capture(skb, skb->pkt_type == PACKET_OUTGOING ? FS_DIR_EGRESS : FS_DIR_INGRESS,
		FS_SRC_SOCKET);
	return 0;
}
