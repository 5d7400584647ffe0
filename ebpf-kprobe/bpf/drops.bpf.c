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
/* SKB_DROP_REASON_TCP_LISTEN_OVERFLOW where the kernel has it (6.15+). */
const volatile __u32 cfg_reason_listen_overflow = FSD_REASON_LISTEN_OVERFLOW_UNNUMBERED;
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

/* A zeroed, time-stamped ring record, or NULL when the rate limit or a full ring says no
 * (each counted). */
static __always_inline struct fsd_drop_event *reserve_event(void)
{
	if (!take_token()) {
		count(FSD_CNT_RATE_LIMITED);
		return NULL;
	}
	struct fsd_drop_event *e = bpf_ringbuf_reserve(&drop_events, sizeof(*e), 0);
	if (!e) {
		count(FSD_CNT_RING_FULL);
		return NULL;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = bpf_ktime_get_ns();
	return e;
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
	struct fsd_drop_event *e = reserve_event();
	if (!e)
		return 0;
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

/* TCP events the packets can't show (issue 17): the kernel's own retransmissions (a capture
 * point sees a resend only if both copies pass it), and who reset a connection, with the
 * socket (its owner by cookie or 4-tuple, its state). Same ring, rate limit and counters as
 * the drops; the counters count every event, reported or not.
 *
 * Only the socket's sock_common is read (valid for full, request and timewait sockets alike),
 * by BTF loads relocated by CO-RE, so the fields' offsets follow the running kernel; the
 * tracepoints' own field layouts (which changed in 6.10 for tcp_send_reset) are not used. */
static __always_inline int on_tcp_event(int mode, __u8 kind, const struct sock *sk,
					struct sk_buff *skb)
{
	if (!sk) {
		/* tcp_send_reset without a socket: a segment for no socket (kfree_skb reports
		 * it as NO_SOCKET). */
		count(FSD_CNT_TCP_RESETS_NO_SOCKET);
		return 0;
	}
	__u16 segments = 0;
	__u8 tcp_flags = 0;
	if (kind == FSD_KIND_RETRANSMIT && skb) {
		/* struct tcp_skb_cb in skb->cb: seq, end_seq, then tcp_gso_segs (u16) at 8 and
		 * tcp_flags at 12 (include/net/tcp.h, unchanged since 4.x). */
		if (mode == READ_PROBE) {
			bpf_probe_read_kernel(&segments, 2, &skb->cb[8]);
			bpf_probe_read_kernel(&tcp_flags, 1, &skb->cb[12]);
		} else {
			segments = *(__u16 *)&skb->cb[8];
			tcp_flags = *(__u8 *)&skb->cb[12];
		}
		if (segments == 0)
			segments = 1;
	}
	if (kind == FSD_KIND_RETRANSMIT) {
		__u32 idx = FSD_CNT_TCP_RETRANS_SEGS;
		__u64 *c = bpf_map_lookup_elem(&drop_counters, &idx);
		if (c)
			*c += segments;
	} else {
		count(kind == FSD_KIND_RESET_SENT ? FSD_CNT_TCP_RESETS_SENT : FSD_CNT_TCP_RESETS_RECEIVED);
		tcp_flags = 0x04; /* RST */
	}
	__u16 family = sk->__sk_common.skc_family;
	if (family != AF_INET && family != AF_INET6) {
		count(FSD_CNT_NOT_TCP_UDP);
		return 0;
	}
	struct fsd_drop_event *e = reserve_event();
	if (!e)
		return 0;
	e->kind = kind;
	e->protocol = IPPROTO_TCP;
	e->tcp_flags = tcp_flags;
	e->segments = segments;
	e->tcp_state = sk->__sk_common.skc_state;
	/* Local and remote end; a received RST travels remote -> local. */
	__u8 *local = kind == FSD_KIND_RESET_RECEIVED ? e->daddr : e->saddr;
	__u8 *remote = kind == FSD_KIND_RESET_RECEIVED ? e->saddr : e->daddr;
	__u16 lport = sk->__sk_common.skc_num;
	if (!lport) {
		/* Closing: inet_put_port() zeroed inet_num as the socket left the hash (an active
		 * reset from close()); a full socket still has inet_sport. */
		struct tcp_sock *tp = bpf_skc_to_tcp_sock((void *)sk);
		if (tp)
			lport = bpf_ntohs(tp->inet_conn.icsk_inet.inet_sport);
	}
	__u16 rport = bpf_ntohs(sk->__sk_common.skc_dport);
	e->sport = kind == FSD_KIND_RESET_RECEIVED ? rport : lport;
	e->dport = kind == FSD_KIND_RESET_RECEIVED ? lport : rport;
	if (family == AF_INET6) {
		__u32 l[4], r[4];
#pragma unroll
		for (int i = 0; i < 4; i++) {
			l[i] = sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[i];
			r[i] = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[i];
		}
		/* A v4-mapped peer (RFC 4291 §2.5.5.2) of a dual-stack socket: its packets are
		 * IPv4. */
		if (r[0] == 0 && r[1] == 0 && r[2] == bpf_htonl(0xffff)) {
			family = AF_INET;
			__builtin_memcpy(local, &l[3], 4);
			__builtin_memcpy(remote, &r[3], 4);
		} else {
			__builtin_memcpy(local, l, 16);
			__builtin_memcpy(remote, r, 16);
		}
	} else {
		__u32 l = sk->__sk_common.skc_rcv_saddr;
		__u32 r = sk->__sk_common.skc_daddr;
		__builtin_memcpy(local, &l, 4);
		__builtin_memcpy(remote, &r, 4);
	}
	e->family = family;
	e->cookie = sk->__sk_common.skc_cookie.counter;
	if (e->cookie)
		e->flags |= FSD_F_COOKIE;
	e->netns = sk->__sk_common.skc_net.net->ns.inum;
	e->flags |= FSD_F_NETNS;
	count(FSD_CNT_EVENTS);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* 6.10+ passes the transmission's error: the kernel counts (TcpRetransSegs) and the old
 * tracepoint fired only on success, so a failed one is no retransmission. */
SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(fsd_tcp_retransmit_err, struct sock *sk, struct sk_buff *skb, int err)
{
	if (err)
		return 0;
	return on_tcp_event(READ_DIRECT, FSD_KIND_RETRANSMIT, sk, skb);
}

/* Before 6.10 the tracepoint has no error argument (and fires on success only). */
SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(fsd_tcp_retransmit, struct sock *sk, struct sk_buff *skb)
{
	return on_tcp_event(READ_DIRECT, FSD_KIND_RETRANSMIT, sk, skb);
}

/* For verifiers that refuse a 2-byte load inside skb->cb (a char array): the helper reads it. */
SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(fsd_tcp_retransmit_pr, struct sock *sk, struct sk_buff *skb)
{
	return on_tcp_event(READ_PROBE, FSD_KIND_RETRANSMIT, sk, skb);
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(fsd_tcp_send_reset, struct sock *sk, struct sk_buff *skb)
{
	return on_tcp_event(READ_DIRECT, FSD_KIND_RESET_SENT, sk, NULL);
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(fsd_tcp_receive_reset, struct sock *sk)
{
	return on_tcp_event(READ_DIRECT, FSD_KIND_RESET_RECEIVED, sk, NULL);
}

/* A SYN to a listener whose accept queue is full (RFC 9293 §3.10.7.2 leaves it to the
 * implementation; Linux drops it and counts ListenOverflows and ListenDrops): the kernel frees
 * it with consume_skb, as if handled, so kfree_skb never sees it, and no tracepoint fires on
 * that path. tcp_conn_request (every IPv4 and IPv6 SYN to a listener; its signature is the same
 * from 4.x to 6.18) checks sk_acceptq_is_full() before anything else that could accept it, so
 * a full queue at its entry is a dropped SYN. fentry is a BPF trampoline on a BTF function,
 * not a kprobe; the loader skips it where the kernel refuses it (drops are still reported).
 * Where enum skb_drop_reason has TCP_LISTEN_OVERFLOW (6.15+, for the handshake's last ACK) the
 * report uses its number, else FSD_REASON_LISTEN_OVERFLOW_UNNUMBERED. */
static __always_inline int on_conn_request(int mode, struct sock *sk, struct sk_buff *skb)
{
	/* sk_acceptq_is_full(): include/net/sock.h */
	if (sk->sk_ack_backlog <= sk->sk_max_ack_backlog)
		return 0;
	count(FSD_CNT_LISTEN_OVERFLOWS);
	return on_drop(mode, skb, cfg_reason_listen_overflow, sk);
}

SEC("fentry/tcp_conn_request")
int BPF_PROG(fsd_listen_overflow, struct request_sock_ops *rsk_ops, const void *af_ops,
	     struct sock *sk, struct sk_buff *skb)
{
	return on_conn_request(READ_DIRECT, sk, skb);
}

SEC("fentry/tcp_conn_request")
int BPF_PROG(fsd_listen_overflow_pr, struct request_sock_ops *rsk_ops, const void *af_ops,
	     struct sock *sk, struct sk_buff *skb)
{
	return on_conn_request(READ_PROBE, sk, skb);
}
