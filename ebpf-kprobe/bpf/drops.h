/* Kernel/userspace contract for flowscope's kernel drop reports.
 *
 * The kfree_skb programs in drops.bpf.c push one `struct fsd_drop_event` per reported drop
 * into the `drop_events` ring buffer. The Rust mirror is ebpf-kprobe/src/drops/wire.rs; a unit
 * test there reads the _Static_assert lines at the bottom of this file and checks its ranges
 * agree. Change both together.
 */
#ifndef FLOWSCOPE_DROPS_H
#define FLOWSCOPE_DROPS_H

/* `flags` */
#define FSD_F_COOKIE 1 /* `cookie` is the socket's cookie (the skb had a socket) */
#define FSD_F_IFINDEX 2 /* `ifindex` is valid */
#define FSD_F_NETNS 4 /* `netns` is valid */

/* One ring record. 80 bytes. Addresses in network byte order (v4 in the first 4 bytes), ports
 * in host byte order. */
struct fsd_drop_event {
	__u64 ts_ns; /* bpf_ktime_get_ns (CLOCK_MONOTONIC) */
	__u64 cookie; /* socket cookie of skb->sk */
	__u32 reason; /* enum skb_drop_reason, numbered as the running kernel numbers it */
	__u32 ifindex; /* skb->dev, else skb->skb_iif */
	__u32 netns; /* inode of the device's (or socket's) network namespace */
	__u16 family; /* AF_INET or AF_INET6 */
	__u8 protocol; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 tcp_flags; /* TCP control bits (byte 13 of the header: CWR ECE URG ACK PSH RST SYN FIN) */
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u32 len; /* IP packet length per its header (IPv6: 40 + payload length) */
	__u8 flags; /* FSD_F_* */
	__u8 kind; /* FSD_KIND_*: a drop, or a TCP event the packets can't show */
	__u8 tcp_state; /* TCP events: the socket's state (TCP_ESTABLISHED = 1, ...) */
	__u8 _pad1;
	__u16 segments; /* FSD_KIND_RETRANSMIT: segments sent again (tcp_skb_pcount) */
	__u8 _pad2[2];
};

/* `kind` */
#define FSD_KIND_DROP 0 /* kfree_skb: a dropped packet */
#define FSD_KIND_RETRANSMIT 1 /* tcp:tcp_retransmit_skb: the kernel sent data again */
#define FSD_KIND_RESET_SENT 2 /* tcp:tcp_send_reset: this host reset the connection */
#define FSD_KIND_RESET_RECEIVED 3 /* tcp:tcp_receive_reset: the peer reset it */

/* Indices of the per-CPU `drop_counters` array. */
#define FSD_CNT_EVENTS 0 /* records written to the ring */
#define FSD_CNT_RING_FULL 1 /* records lost because the ring was full */
#define FSD_CNT_RATE_LIMITED 2 /* drops not reported: over the per-CPU rate */
#define FSD_CNT_NOT_TCP_UDP 3 /* drops of packets that are not TCP/UDP over IP (or unreadable) */
#define FSD_CNT_NOT_SPECIFIED 4 /* kfree_skb with SKB_DROP_REASON_NOT_SPECIFIED: not reported */
#define FSD_CNT_QUEUE_PURGE 5 /* SKB_DROP_REASON_QUEUE_PURGE (socket destroyed): not reported */
#define FSD_CNT_TCP_RETRANS_SEGS 6 /* segments the kernel retransmitted (as TcpRetransSegs) */
#define FSD_CNT_TCP_RESETS_SENT 7 /* RSTs sent for a socket */
#define FSD_CNT_TCP_RESETS_RECEIVED 8 /* RSTs that reset a socket */
#define FSD_CNT_TCP_RESETS_NO_SOCKET 9 /* RSTs sent for no socket (the kfree_skb NO_SOCKET drop reports those) */
#define FSD_CNT_LISTEN_OVERFLOWS 10 /* SYNs dropped for a full accept queue (as ListenOverflows) */
#define FSD_CNT_MAX 11

/* `reason` of a SYN dropped for a full accept queue on a kernel whose enum skb_drop_reason
 * has no TCP_LISTEN_OVERFLOW (before 6.15). */
#define FSD_REASON_LISTEN_OVERFLOW_UNNUMBERED 0xfffffffe

/* Per-CPU token bucket (`drop_bucket`). */
struct fsd_bucket {
	__u64 tokens_x1000; /* tokens in thousandths, so slow rates still refill per ns step */
	__u64 last_ns;
};

/* The layout the Rust mirror (src/drops/wire.rs) assumes; its test reads these lines. */
_Static_assert(sizeof(struct fsd_drop_event) == 80, "fsd_drop_event size");
_Static_assert(__builtin_offsetof(struct fsd_drop_event, ts_ns) == 0, "ts_ns");
_Static_assert(__builtin_offsetof(struct fsd_drop_event, cookie) == 8, "cookie");
_Static_assert(__builtin_offsetof(struct fsd_drop_event, reason) == 16, "reason");
_Static_assert(__builtin_offsetof(struct fsd_drop_event, ifindex) == 20, "ifindex");
_Static_assert(__builtin_offsetof(struct fsd_drop_event, netns) == 24, "netns");
_Static_assert(__builtin_offsetof(struct fsd_drop_event, family) == 28, "family");
_Static_assert(__builtin_offsetof(struct fsd_drop_event, protocol) == 30, "protocol");
_Static_assert(__builtin_offsetof(struct fsd_drop_event, tcp_flags) == 31, "tcp_flags");
_Static_assert(__builtin_offsetof(struct fsd_drop_event, saddr) == 32, "saddr");
_Static_assert(__builtin_offsetof(struct fsd_drop_event, daddr) == 48, "daddr");
_Static_assert(__builtin_offsetof(struct fsd_drop_event, sport) == 64, "sport");
_Static_assert(__builtin_offsetof(struct fsd_drop_event, dport) == 66, "dport");
_Static_assert(__builtin_offsetof(struct fsd_drop_event, len) == 68, "len");
_Static_assert(__builtin_offsetof(struct fsd_drop_event, flags) == 72, "flags");
_Static_assert(__builtin_offsetof(struct fsd_drop_event, kind) == 73, "kind");
_Static_assert(__builtin_offsetof(struct fsd_drop_event, tcp_state) == 74, "tcp_state");
_Static_assert(__builtin_offsetof(struct fsd_drop_event, segments) == 76, "segments");

#endif
