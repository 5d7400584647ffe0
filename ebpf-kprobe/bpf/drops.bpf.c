// SPDX-License-Identifier: GPL-2.0
/* flowscope kernel drop reports: which TCP/UDP packets the kernel dropped, and why.
 *
 * One program on the kfree_skb tracepoint, as tp_btf: the kernel hands it a typed
 * `struct sk_buff *` and the `enum skb_drop_reason` (the tracepoint has had the reason since
 * 5.17). The skb's fields are read by direct BTF loads; its header bytes (`skb->head` + the
 * network header offset) are read either
 *
 *  - directly (`fsd_kfree_skb`): newer verifiers type a load through a `char *` member of a
 *    BTF struct as read-only untrusted memory (a fault reads zero), which needs no helper and
 *    so works under kernel lockdown=confidentiality, where bpf_probe_read_kernel is refused;
 *  - or with bpf_probe_read_kernel (`fsd_kfree_skb_pr`), for older verifiers that treat that
 *    load as a plain number.
 *
 * The loader tries the first (with the tracepoint's rx_sk argument where the kernel has it),
 * then the second; if neither loads, drops are not reported (and
 * the agent says so). Normal frees are not drops: SKB_CONSUMED (consume_skb, from 6.3 also
 * through kfree_skb_reason) and SKB_DROP_REASON_NOT_SPECIFIED (plain kfree_skb(), which many
 * callers still use for frees that are not drops: counted only), and QUEUE_PURGE (a socket's
 * queues freed as it is destroyed: data delivered to the host that its reader never took, or
 * the FIN still queued; nothing was lost on the network: counted only). Their numbers differ between
 * kernels, so the loader reads them from the kernel's BTF and sets cfg_reason_*.
 *
 * Reports are rate-limited per CPU by a token bucket (cfg_rate_per_sec, cfg_burst); the drops
 * over the rate are counted (FSD_CNT_RATE_LIMITED).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>

#include "drops.h"

char LICENSE[] SEC("license") = "GPL";

#define AF_INET 2
#define AF_INET6 10
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
/* IPv6 extension headers walked to reach TCP/UDP (RFC 8200 §4). */
#define NEXTHDR_HOP 0
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_DEST 60

/* Set by the loader from the running kernel's `enum skb_drop_reason`. */
const volatile __u32 cfg_reason_consumed = 0xffffffff;
const volatile __u32 cfg_reason_not_specified = 0xffffffff;
const volatile __u32 cfg_reason_queue_purge = 0xffffffff;
/* Reports per second and per CPU, and the burst allowed above it. */
const volatile __u64 cfg_rate_per_sec = 1000;
const volatile __u64 cfg_burst = 1000;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 << 10);
} drop_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FSD_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} drop_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fsd_bucket);
} drop_bucket SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&drop_counters, &idx);
	if (c)
		*c += 1;
}

/* Takes one token from this CPU's bucket; 0 when it is empty. */
static __always_inline int take_token(void)
{
	__u32 zero = 0;
	struct fsd_bucket *b = bpf_map_lookup_elem(&drop_bucket, &zero);
	if (!b)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	__u64 elapsed = now - b->last_ns;
	/* Caps the refill product (and the first call, when last_ns is 0). */
	if (elapsed > 10000000000ULL)
		elapsed = 10000000000ULL;
	b->last_ns = now;
	/* tokens in thousandths: elapsed ns * rate/s * 1000 / 1e9 */
	__u64 tokens = b->tokens_x1000 + elapsed * cfg_rate_per_sec / 1000000;
	if (tokens > cfg_burst * 1000)
		tokens = cfg_burst * 1000;
	if (tokens < 1000) {
		b->tokens_x1000 = tokens;
		return 0;
	}
	b->tokens_x1000 = tokens - 1000;
	return 1;
}

#define READ_DIRECT 0
#define READ_PROBE 1

/* Copies `n` header bytes at `head + off`. `mode` is a constant: each program keeps one
 * branch. */
static __always_inline void read_bytes(int mode, void *dst, const unsigned char *head, __u32 off,
				       __u32 n)
{
	if (mode == READ_PROBE) {
		bpf_probe_read_kernel(dst, n, head + off);
		return;
	}
	/* n is a constant at every call site: clang emits fixed-size loads. */
	__builtin_memcpy(dst, head + off, n);
}

static __always_inline __u8 read_u8(int mode, const unsigned char *head, __u32 off)
{
	__u8 v = 0;
	read_bytes(mode, &v, head, off, 1);
	return v;
}

/* Finds TCP/UDP after an IPv6 header at `off`: returns the transport header offset and sets
 * `*proto`, or 0. Non-first fragments (RFC 8200 §4.5) carry no ports. */
static __always_inline __u32 ipv6_transport(int mode, const unsigned char *head, __u32 off,
					    __u8 *proto)
{
	__u8 next = read_u8(mode, head, off + 6);
	__u32 pos = off + 40;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		if (next == IPPROTO_TCP || next == IPPROTO_UDP) {
			*proto = next;
			return pos;
		}
		if (next == NEXTHDR_FRAGMENT) {
			__u8 fo[2] = {};
			read_bytes(mode, fo, head, pos + 2, 2);
			if (((fo[0] << 8) | fo[1]) & 0xfff8)
				return 0;
			next = read_u8(mode, head, pos);
			pos += 8;
		} else if (next == NEXTHDR_HOP || next == NEXTHDR_ROUTING || next == NEXTHDR_DEST) {
			__u8 len = read_u8(mode, head, pos + 1);
			next = read_u8(mode, head, pos);
			pos += ((__u32)len + 1) * 8;
		} else {
			return 0;
		}
	}
	return 0;
}

static __always_inline int on_drop(int mode, struct sk_buff *skb, __u32 reason,
				   struct sock *rx_sk)
{
	/* SKB_NOT_DROPPED_YET is 0 on every kernel that has the enum. */
	if (reason == 0 || reason == cfg_reason_consumed)
		return 0;
	if (reason == cfg_reason_not_specified) {
		count(FSD_CNT_NOT_SPECIFIED);
		return 0;
	}
	if (reason == cfg_reason_queue_purge) {
		count(FSD_CNT_QUEUE_PURGE);
		return 0;
	}
	const unsigned char *head = skb->head;
	__u32 nh = skb->network_header;
	__u32 tail = skb->tail;
	__u16 eth_proto = bpf_ntohs(skb->protocol);
	/* network_header is (u16)~0 until set; locally made packets may have protocol 0 until
	 * the IP layer sets it, so the version nibble decides. */
	if (!head || nh == 0xffff || nh + 20 > tail ||
	    (eth_proto != ETH_P_IP && eth_proto != ETH_P_IPV6 && eth_proto != 0)) {
		count(FSD_CNT_NOT_TCP_UDP);
		return 0;
	}
	__u8 vihl = read_u8(mode, head, nh);
	__u8 proto = 0;
	__u32 th = 0;
	__u16 family = 0;
	if ((vihl >> 4) == 4) {
		/* RFC 791 §3.1: IHL in 32-bit words; ports only in the first fragment. */
		__u8 frag[2] = {};
		read_bytes(mode, frag, head, nh + 6, 2);
		proto = read_u8(mode, head, nh + 9);
		if ((vihl & 0xf) >= 5 && !(((frag[0] << 8) | frag[1]) & 0x1fff)) {
			th = nh + (vihl & 0xf) * 4;
			family = AF_INET;
		}
	} else if ((vihl >> 4) == 6 && nh + 40 <= tail) {
		th = ipv6_transport(mode, head, nh, &proto);
		family = AF_INET6;
	}
	if (!th || (proto != IPPROTO_TCP && proto != IPPROTO_UDP) ||
	    th + (proto == IPPROTO_TCP ? 14 : 4) > tail) {
		count(FSD_CNT_NOT_TCP_UDP);
		return 0;
	}
	if (!take_token()) {
		count(FSD_CNT_RATE_LIMITED);
		return 0;
	}
	struct fsd_drop_event *e = bpf_ringbuf_reserve(&drop_events, sizeof(*e), 0);
	if (!e) {
		count(FSD_CNT_RING_FULL);
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = bpf_ktime_get_ns();
	e->reason = reason;
	e->family = family;
	e->protocol = proto;
	__u8 len[2] = {};
	if (family == AF_INET) {
		/* RFC 791 §3.1 Total Length */
		read_bytes(mode, len, head, nh + 2, 2);
		e->len = (len[0] << 8) | len[1];
		read_bytes(mode, e->saddr, head, nh + 12, 4);
		read_bytes(mode, e->daddr, head, nh + 16, 4);
	} else {
		/* RFC 8200 §3 Payload Length, after the 40-byte fixed header */
		read_bytes(mode, len, head, nh + 4, 2);
		e->len = 40 + ((len[0] << 8) | len[1]);
		read_bytes(mode, e->saddr, head, nh + 8, 16);
		read_bytes(mode, e->daddr, head, nh + 24, 16);
	}
	__u8 ports[4] = {};
	read_bytes(mode, ports, head, th, 4);
	e->sport = (ports[0] << 8) | ports[1];
	e->dport = (ports[2] << 8) | ports[3];
	if (proto == IPPROTO_TCP)
		e->tcp_flags = read_u8(mode, head, th + 13);
	struct net_device *dev = skb->dev;
	if (dev) {
		e->ifindex = dev->ifindex;
		e->netns = dev->nd_net.net->ns.inum;
		e->flags |= FSD_F_IFINDEX | FSD_F_NETNS;
	} else if (skb->skb_iif) {
		e->ifindex = skb->skb_iif;
		e->flags |= FSD_F_IFINDEX;
	}
	/* The skb's own socket (a sender's, or one early demux attached), else the receiving
	 * socket the stack had found (the tracepoint's rx_sk, 6.11+). */
	struct sock *sk = skb->sk;
	if (!sk)
		sk = rx_sk;
	if (sk) {
		/* The cookie as stored: 0 when nothing asked for one yet, and then nothing
		 * reported an owner under it either. (bpf_get_socket_cookie refuses the RCU
		 * pointer skb->sk is typed as.) */
		e->cookie = sk->__sk_common.skc_cookie.counter;
		if (e->cookie)
			e->flags |= FSD_F_COOKIE;
		if (!(e->flags & FSD_F_NETNS)) {
			e->netns = sk->__sk_common.skc_net.net->ns.inum;
			e->flags |= FSD_F_NETNS;
		}
	}
	count(FSD_CNT_EVENTS);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* 6.11+ passes the receiving socket as a fourth argument; older kernels refuse this program
 * (the context has three), and the loader takes the next. */
SEC("tp_btf/kfree_skb")
int BPF_PROG(fsd_kfree_skb_rx, struct sk_buff *skb, void *location, enum skb_drop_reason reason,
	     struct sock *rx_sk)
{
	return on_drop(READ_DIRECT, skb, reason, rx_sk);
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(fsd_kfree_skb, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	return on_drop(READ_DIRECT, skb, reason, NULL);
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(fsd_kfree_skb_pr, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	return on_drop(READ_PROBE, skb, reason, NULL);
}
