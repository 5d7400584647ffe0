// SPDX-License-Identifier: GPL-2.0
/* flowscope process attribution: who owns each socket.
 *
 * Two sets of programs share the ring and the record layout; the loader picks one set at
 * start-up from feature probes (src/probe.rs):
 *
 *  - "kprobe": kprobes on tcp_connect, inet_csk_accept (return), tcp_sendmsg/tcp_recvmsg,
 *    udp_sendmsg/udpv6_sendmsg and tcp_close. Every hook runs in the owning process's context
 *    with the struct sock in hand, so tuple and owner come in one record.
 *  - "cgroup+tp_btf", for kernels without kprobes (or with lockdown blocking fentry):
 *      cgroup/connect{4,6}        process context, before the local port is bound: owner + cookie
 *      cgroup/{send,recv}msg{4,6} unconnected UDP: owner + local port + peer, deduplicated
 *      cgroup/sock_release        a TCP/connected-UDP socket's close: cookie, peer and owner,
 *                                 unless its sends or receives reported it already
 *      tp_btf/inet_sock_set_state TCP: cookie <-> tuple join; SYN_SENT runs inside connect(2),
 *                                 so it also carries the owner; a passive open names a server
 *                                 endpoint and its tuple (no owner); TCP_CLOSE tells userspace
 *                                 to evict
 *      tp_btf/tcp_sendmsg_locked (kernels from 6.16): the same at the start of a TCP send,
 *                                 before its first segment (sock_send_length fires at its end)
 *      tp_btf/sock_{send,recv}_length (kernels from 6.3): a socket's first send or receive by
 *                                 a process: its tuple with the owner, once per socket, peer
 *                                 and process (socket-local storage). Covers accepted sockets and
 *                                 connected UDP without any syscall tracepoint, which would
 *                                 put every syscall of every task on the slow path (see below).
 *      syscalls/sys_exit_accept{,4}, sys_{enter,exit}_connect tracepoints (or tp_btf/sys_exit
 *                                 where those are missing), on kernels without the socket
 *                                 tracepoints: accept/accept4 (and UDP connect) return: walk
 *                                 the fd table to the new socket and report its tuple with
 *                                 the owner
 *
 * comm, tgid, tid and cgroup id are taken here, at the event: a process that connects and exits
 * within a millisecond is gone before userspace could read /proc.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "attribution.h"
#include "ringbuf_wakeup.h"
#include "sock_ends.h"

char LICENSE[] SEC("license") = "GPL";

#define AF_INET 2
#define AF_INET6 10
#define EINPROGRESS 115

/* Syscall numbers the sys_exit program cares about (arch-specific, see unistd tables). */
#if defined(__TARGET_ARCH_arm64)
#define NR_CONNECT 203
#define NR_ACCEPT 202
#define NR_ACCEPT4 242
#else
#define NR_CONNECT 42
#define NR_ACCEPT 43
#define NR_ACCEPT4 288
#endif

/* Set by the loader before load. With the cgroup connect hooks attached, the SYN_SENT record
 * would repeat what connect4/6 already said (its local port is not bound yet), so only the
 * tp_btf-only method asks for it. */
const volatile __u8 cfg_syn_sent_owner = 1;

/* 0: wake the reader on every record (lowest latency). N: once per N unread bytes written; the
 * reader must then also poll on a timer. Each wakeup is an irq_work (a self-IPI, a VM exit under
 * virtualisation), which dominates the per-connection cost when the reader keeps up. */
const volatile __u32 cfg_wakeup_bytes = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FSA_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* Send/recv hooks fire per message; report a (socket, peer) only when its owner changes. */
struct io_key {
	__u64 sock; /* cookie (cgroup hooks) or struct sock address (kprobes) */
	__u32 peer; /* xor of the peer address words */
	__u16 dport;
	__u16 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct io_key);
	__type(value, __u32);
} io_seen SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &idx);
	if (c)
		*c += 1;
}

static __always_inline struct fsa_sock_event *reserve(__u8 kind)
{
	struct fsa_sock_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(FSA_CNT_RING_FULL);
		return NULL;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = bpf_ktime_get_ns();
	e->kind = kind;
	return e;
}

static __always_inline void submit(struct fsa_sock_event *e)
{
	count(FSA_CNT_EVENTS);
	if (!cfg_wakeup_bytes) {
		bpf_ringbuf_submit(e, 0);
		return;
	}
	/* Reserved, so already counted in the unread bytes (by its footprint). */
	__u64 unread = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	__u64 footprint = fs_ringbuf_footprint(sizeof(*e));
	__u64 before = unread >= footprint ? unread - footprint : 0;
	bpf_ringbuf_submit(e, fs_wakeup_flags(before, sizeof(*e), cfg_wakeup_bytes));
}

/* The current task as owner. */
static __always_inline void fill_process(struct fsa_sock_event *e)
{
	__u64 id = bpf_get_current_pid_tgid();
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->flags |= FSA_F_PROCESS;
}

/* Network namespace of the current task (task->nsproxy->net_ns->ns.inum). */
static __always_inline void fill_task_netns(struct fsa_sock_event *e)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	e->netns = BPF_CORE_READ(t, nsproxy, net_ns, ns.inum);
	if (e->netns)
		e->flags |= FSA_F_NETNS;
}

/* Family, protocol, both ends and netns of a kernel socket. Returns 0 for TCP/UDP over IP. */
static __always_inline int fill_sock(struct fsa_sock_event *e, struct sock *sk)
{
	__u8 proto = 0;
	if (read_sock_ends(sk, &e->family, &proto, e->saddr, e->daddr, &e->sport, &e->dport) < 0)
		return -1;
	e->protocol = proto;
	e->flags |= FSA_F_REMOTE;
	/* At SYN_SENT the port is not bound yet (tcp_v4_connect sets the state before
	 * inet_hash_connect), and at TCP_CLOSE it is already released: no local end then. */
	if (e->sport)
		e->flags |= FSA_F_LOCAL;
	e->netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	if (e->netns)
		e->flags |= FSA_F_NETNS;
	return 0;
}

/* The socket's cookie as the kernel stored it; 0 when nothing has asked for one yet. */
static __always_inline void fill_stored_cookie(struct fsa_sock_event *e, struct sock *sk)
{
	e->cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	if (e->cookie)
		e->flags |= FSA_F_COOKIE;
}

/* ---------------------------------------------------------------- cgroup sock_addr hooks -- */

static __always_inline void sock_addr_event(struct bpf_sock_addr *ctx, __u8 kind, int v6)
{
	struct fsa_sock_event *e = reserve(kind);
	if (!e)
		return;
	fill_process(e);
	fill_task_netns(e);
	e->cookie = bpf_get_socket_cookie(ctx);
	e->flags |= FSA_F_COOKIE | FSA_F_REMOTE;
	e->protocol = ctx->protocol;
	e->dport = bpf_ntohs(ctx->user_port);
	if (v6) {
		e->family = AF_INET6;
		__u32 d[4] = { ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3] };
		__builtin_memcpy(e->daddr, d, 16);
	} else {
		e->family = AF_INET;
		__u32 d = ctx->user_ip4;
		__builtin_memcpy(e->daddr, &d, 4);
	}
	if (kind != FSA_KIND_CONNECT) {
		/* sendmsg/recvmsg: the socket is bound by now (inet_send_prepare autobinds). */
		struct bpf_sock *sk = ctx->sk;
		if (sk) {
			e->sport = sk->src_port;
			if (v6) {
				__u32 s[4] = { sk->src_ip6[0], sk->src_ip6[1], sk->src_ip6[2], sk->src_ip6[3] };
				__builtin_memcpy(e->saddr, s, 16);
			} else {
				__u32 s = sk->src_ip4;
				__builtin_memcpy(e->saddr, &s, 4);
			}
			e->flags |= FSA_F_LOCAL;
		}
	}
	submit(e);
}

/* True when (cookie, peer) was already reported for this tgid. */
static __always_inline int io_already_seen(__u64 sock, __u32 peer, __u16 dport)
{
	struct io_key k = { .sock = sock, .peer = peer, .dport = dport };
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u32 *old = bpf_map_lookup_elem(&io_seen, &k);
	if (old && *old == tgid) {
		count(FSA_CNT_DEDUP);
		return 1;
	}
	bpf_map_update_elem(&io_seen, &k, &tgid, BPF_ANY);
	return 0;
}

static __always_inline int udp_msg(struct bpf_sock_addr *ctx, __u8 kind, int v6)
{
	__u32 peer = v6 ? ctx->user_ip6[0] ^ ctx->user_ip6[1] ^ ctx->user_ip6[2] ^ ctx->user_ip6[3]
			: ctx->user_ip4;
	if (!io_already_seen(bpf_get_socket_cookie(ctx), peer, ctx->user_port))
		sock_addr_event(ctx, kind, v6);
	return 1;
}

SEC("cgroup/connect4")
int fsa_connect4(struct bpf_sock_addr *ctx)
{
	sock_addr_event(ctx, FSA_KIND_CONNECT, 0);
	return 1;
}

SEC("cgroup/connect6")
int fsa_connect6(struct bpf_sock_addr *ctx)
{
	sock_addr_event(ctx, FSA_KIND_CONNECT, 1);
	return 1;
}

SEC("cgroup/sendmsg4")
int fsa_sendmsg4(struct bpf_sock_addr *ctx)
{
	return udp_msg(ctx, FSA_KIND_UDP_SEND, 0);
}

SEC("cgroup/sendmsg6")
int fsa_sendmsg6(struct bpf_sock_addr *ctx)
{
	return udp_msg(ctx, FSA_KIND_UDP_SEND, 1);
}

SEC("cgroup/recvmsg4")
int fsa_recvmsg4(struct bpf_sock_addr *ctx)
{
	return udp_msg(ctx, FSA_KIND_UDP_RECV, 0);
}

SEC("cgroup/recvmsg6")
int fsa_recvmsg6(struct bpf_sock_addr *ctx)
{
	return udp_msg(ctx, FSA_KIND_UDP_RECV, 1);
}

/* ----------------------------------------------------------------------- tp_btf programs -- */

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(fsa_state, struct sock *sk, int oldstate, int newstate)
{
	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	if (newstate != TCP_SYN_SENT && newstate != TCP_ESTABLISHED && newstate != TCP_CLOSE)
		return 0;
	/* Asking for the cookie also creates it (at ESTABLISHED for an accepted socket), so the
	 * accept path below can read it from the socket. */
	__u64 cookie = bpf_get_socket_cookie(sk);
	__u8 kind;
	if (newstate == TCP_SYN_SENT && cfg_syn_sent_owner)
		kind = FSA_KIND_CONNECT; /* inside connect(2): current is the owner */
	else if (newstate == TCP_CLOSE)
		kind = FSA_KIND_CLOSE;
	else if (newstate == TCP_ESTABLISHED && oldstate == TCP_SYN_SENT)
		kind = FSA_KIND_STATE; /* active open: joins the connect's cookie to the tuple */
	else if (newstate == TCP_ESTABLISHED && oldstate == TCP_SYN_RECV)
		/* Passive open, in softirq: no owner here (it comes with the accept, the first I/O
		 * or the release), but its local end is a server endpoint of this node, which tells
		 * userspace to wait for the owner of a flow whose far end it is, and its cookie and
		 * tuple let a release (cookie only) name it. The handshake's last ACK is processed
		 * before the client sends its request, so this comes first. */
		kind = FSA_KIND_STATE;
	else
		return 0;
	struct fsa_sock_event *e = reserve(kind);
	if (!e)
		return 0;
	if (fill_sock(e, sk) < 0) {
		bpf_ringbuf_discard(e, 0);
		return 0;
	}
	e->cookie = cookie;
	e->flags |= FSA_F_COOKIE;
	e->old_state = oldstate;
	e->new_state = newstate;
	if (kind == FSA_KIND_CONNECT)
		fill_process(e);
	submit(e);
	return 0;
}

/* Per socket: the peer it was last reported with, and the last processes (tgids) reported as
 * using it with that peer. Socket-local storage lives and dies with the socket (no eviction,
 * nothing left after close) and is one pointer walk from the `struct sock`, which matters on a
 * hook that runs for every socket send and receive. About 300 bytes of kernel memory per socket
 * that did I/O (the element and the socket's storage header), charged to the agent's cgroup. */
#define IO_OWNER_SLOTS 4
struct io_owner {
	__u32 tgid[IO_OWNER_SLOTS]; /* 0: empty; the oldest is overwritten first */
	__u32 daddr[4];             /* the peer: IPv4 in daddr[0], or IPv6 */
	__u16 dport;                /* network byte order, as in the socket */
	__u8 next;                  /* slot the next reported tgid goes to */
	__u8 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct io_owner);
} io_owner SEC(".maps");

#define PF_KTHREAD_FLAG 0x00200000 /* include/linux/sched.h PF_KTHREAD */

/* Whether `o` lists `tgid` among the processes reported with its peer. */
static __always_inline int io_owner_has(const struct io_owner *o, __u32 tgid)
{
	return o->tgid[0] == tgid || o->tgid[1] == tgid || o->tgid[2] == tgid || o->tgid[3] == tgid;
}

/* A send or receive on `sk` by the current task: reports (tuple, owner) the first time a
 * process uses this socket with this peer. A socket shared by up to IO_OWNER_SLOTS processes
 * (inherited over fork, passed with SCM_RIGHTS) is reported once per process, not on every
 * change of user; a connected UDP socket connected anew to another peer is reported again, as
 * its new tuple names nothing yet. Only sockets with both ends: a TCP connection, or a
 * connected UDP socket (an unconnected one's peer changes per datagram; the cgroup
 * sendmsg/recvmsg hooks report those). Not the kernel's own sockets (NFS, SMB, Ceph: created
 * with kern=1, used by whichever task runs the RPC) nor I/O from kernel threads: they have no
 * process owner, and reporting them would flip the owner at every RPC. The mark is written
 * only once the record is in the ring, so a full ring is retried at the next I/O. The early
 * checks are direct BTF loads: other sockets (unix, netlink, one already reported) cost a few
 * loads and, for TCP/UDP, one storage lookup. */
static __always_inline void sock_io(struct sock *sk)
{
	if (!sk)
		return;
	__u16 family = sk->__sk_common.skc_family;
	if (family != AF_INET && family != AF_INET6)
		return;
	__u16 proto = sk->sk_protocol;
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return;
	__u16 dport = sk->__sk_common.skc_dport;
	if (!dport || !sk->__sk_common.skc_num)
		return;
	__u32 d[4] = {};
	if (family == AF_INET) {
		d[0] = sk->__sk_common.skc_daddr;
	} else {
		d[0] = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[0];
		d[1] = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[1];
		d[2] = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[2];
		d[3] = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[3];
	}
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	/* The common case, a socket this process already reported with this peer, is one
	 * lookup and a few compares; the filters and the storage's creation are for a miss. */
	struct io_owner *o = bpf_sk_storage_get(&io_owner, sk, 0, 0);
	int same_peer = 0;
	if (o) {
		same_peer = o->dport == dport && o->daddr[0] == d[0] && o->daddr[1] == d[1] &&
			    o->daddr[2] == d[2] && o->daddr[3] == d[3];
		if (same_peer && io_owner_has(o, tgid))
			return;
	}
	if (BPF_CORE_READ_BITFIELD(sk, sk_kern_sock))
		return;
	struct task_struct *task = bpf_get_current_task_btf();
	if (task->flags & PF_KTHREAD_FLAG)
		return;
	if (!o)
		o = bpf_sk_storage_get(&io_owner, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!o)
		return;
	struct fsa_sock_event *e = reserve(FSA_KIND_IO);
	if (!e)
		return;
	if (fill_sock(e, sk) < 0) {
		bpf_ringbuf_discard(e, 0);
		return;
	}
	e->cookie = bpf_get_socket_cookie(sk);
	e->flags |= FSA_F_COOKIE;
	fill_process(e);
	submit(e);
	/* Another CPU may race this update for the same socket: at worst one more report. */
	if (!same_peer) {
		o->tgid[0] = o->tgid[1] = o->tgid[2] = o->tgid[3] = 0;
		o->daddr[0] = d[0];
		o->daddr[1] = d[1];
		o->daddr[2] = d[2];
		o->daddr[3] = d[3];
		o->dport = dport;
		o->next = 0;
	}
	o->tgid[o->next & (IO_OWNER_SLOTS - 1)] = tgid;
	o->next++;
}

/* A TCP or connected UDP socket's release (close of its last file reference, or its owner's
 * exit), in the closing process's context (a deferred close, e.g. io_uring's teardown, runs
 * in a kworker, which is then named), before the kernel closes the connection: names a
 * socket that no send or receive did, e.g. an accepted connection closed unread (a server
 * shedding load: its RST goes out here). A release program may not read the local end
 * (src_ip4/src_ip6/src_port are for the post-bind hooks only), so the record carries the
 * cookie, the peer and the owner; userspace joins the cookie to the tuple its passive open
 * reported. Skipped when this process already reported the socket with this peer. */
SEC("cgroup/sock_release")
int fsa_release(struct bpf_sock *sk)
{
	__u16 family = sk->family;
	if (family != AF_INET && family != AF_INET6)
		return 1;
	__u8 proto = sk->protocol;
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return 1;
	__u16 dport = sk->dst_port; /* network byte order, in the low 16 bits */
	if (!dport)
		return 1;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct io_owner *o = bpf_sk_storage_get(&io_owner, sk, 0, 0);
	if (o && o->dport == dport && io_owner_has(o, tgid))
		return 1;
	struct fsa_sock_event *e = reserve(FSA_KIND_IO);
	if (!e)
		return 1;
	e->family = family;
	e->protocol = proto;
	e->dport = bpf_ntohs(dport);
	if (family == AF_INET6) {
		__u32 d6[4] = { sk->dst_ip6[0], sk->dst_ip6[1], sk->dst_ip6[2], sk->dst_ip6[3] };
		__builtin_memcpy(e->daddr, d6, 16);
	} else {
		__u32 d4 = sk->dst_ip4;
		__builtin_memcpy(e->daddr, &d4, 4);
	}
	e->flags |= FSA_F_REMOTE;
	e->cookie = bpf_get_socket_cookie(sk);
	e->flags |= FSA_F_COOKIE;
	fill_process(e);
	submit(e);
	return 1;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(fsa_sock_send, struct sock *sk, int ret, int flags)
{
	sock_io(sk);
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(fsa_sock_recv, struct sock *sk, int ret, int flags)
{
	sock_io(sk);
	return 0;
}

/* The start of each chunk of a TCP send (kernels from 6.16), in the sender's context:
 * sock_send_length fires only when the send call returns, which for a blocking send of
 * megabytes on a socket that never read first (a server that speaks first, an FTP data
 * connection) is after its segments, and their retransmissions, went out unattributed. */
SEC("tp_btf/tcp_sendmsg_locked")
int BPF_PROG(fsa_tcp_send, struct sock *sk, struct msghdr *msg, struct sk_buff *skb,
	     int size_goal)
{
	sock_io(sk);
	return 0;
}

/* Reports the socket behind `fd` of the current task: walks task->files->fdt->fd[fd] to the
 * struct socket and its struct sock with bpf_probe_read_kernel (a variable index into the fd
 * array can't be a direct BTF load). */
static __always_inline void report_fd(long fd, __u8 kind)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	unsigned int max_fds = BPF_CORE_READ(fdt, max_fds);
	if (fd < 0 || fd >= max_fds) {
		count(FSA_CNT_NO_SOCK);
		return;
	}
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = NULL;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	if (!f) {
		count(FSA_CNT_NO_SOCK);
		return;
	}
	struct socket *sock = BPF_CORE_READ(f, private_data);
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk) {
		count(FSA_CNT_NO_SOCK);
		return;
	}
	/* TCP connects are reported by the connect hooks and joined at ESTABLISHED; here only
	 * UDP connect needs its bound tuple. */
	if (kind == FSA_KIND_CONNECT && BPF_CORE_READ(sk, sk_protocol) != IPPROTO_UDP)
		return;
	struct fsa_sock_event *e = reserve(kind);
	if (!e)
		return;
	if (fill_sock(e, sk) < 0) {
		bpf_ringbuf_discard(e, 0);
		return;
	}
	fill_stored_cookie(e, sk);
	fill_process(e);
	submit(e);
}

/* Preferred: the per-syscall tracepoints, which run only for these syscalls. Their context is
 * the tracepoint format: 8 bytes of common fields, the syscall number, then the return value
 * (exit) or the six arguments (enter), each in an 8-byte slot. */
struct syscall_exit_ctx {
	__u64 common;
	long nr;
	long ret;
};

struct syscall_enter_ctx {
	__u64 common;
	long nr;
	unsigned long args[6];
};

/* connect(2)'s fd, from entry to exit, per thread. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __s32);
} connect_fd SEC(".maps");

SEC("tracepoint/syscalls/sys_exit_accept4")
int fsa_exit_accept4(struct syscall_exit_ctx *ctx)
{
	if (ctx->ret >= 0)
		report_fd(ctx->ret, FSA_KIND_ACCEPT);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept")
int fsa_exit_accept(struct syscall_exit_ctx *ctx)
{
	if (ctx->ret >= 0)
		report_fd(ctx->ret, FSA_KIND_ACCEPT);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_connect")
int fsa_enter_conn(struct syscall_enter_ctx *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__s32 fd = ctx->args[0];
	bpf_map_update_elem(&connect_fd, &tid, &fd, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_connect")
int fsa_exit_conn(struct syscall_exit_ctx *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__s32 *fd = bpf_map_lookup_elem(&connect_fd, &tid);
	if (!fd)
		return 0;
	__s32 v = *fd;
	bpf_map_delete_elem(&connect_fd, &tid);
	if (ctx->ret == 0 || ctx->ret == -EINPROGRESS)
		report_fd(v, FSA_KIND_CONNECT);
	return 0;
}

/* Fallback where syscall tracepoints are missing (no CONFIG_FTRACE_SYSCALLS or no tracefs):
 * one program on every syscall exit, filtering by number first. */
SEC("tp_btf/sys_exit")
int BPF_PROG(fsa_sys_exit, struct pt_regs *regs, long ret)
{
	if (ret < 0 && ret != -EINPROGRESS)
		return 0;
#if defined(__TARGET_ARCH_arm64)
	long nr = regs->syscallno;
	long arg0 = regs->orig_x0;
#else
	long nr = regs->orig_ax;
	long arg0 = regs->di;
#endif
	if (nr == NR_ACCEPT || nr == NR_ACCEPT4)
		report_fd(ret, FSA_KIND_ACCEPT);
	else if (nr == NR_CONNECT)
		report_fd(arg0, FSA_KIND_CONNECT);
	return 0;
}

/* ------------------------------------------------------------------------------ kprobes -- */

static __always_inline int kprobe_sock(struct sock *sk, __u8 kind)
{
	if (!sk)
		return 0;
	struct fsa_sock_event *e = reserve(kind);
	if (!e)
		return 0;
	if (fill_sock(e, sk) < 0) {
		bpf_ringbuf_discard(e, 0);
		return 0;
	}
	fill_stored_cookie(e, sk);
	if (kind != FSA_KIND_CLOSE)
		fill_process(e);
	submit(e);
	return 0;
}

static __always_inline int kprobe_io(struct sock *sk, __u8 kind)
{
	if (!sk)
		return 0;
	__u32 peer = BPF_CORE_READ(sk, __sk_common.skc_daddr);
	__u16 dport = BPF_CORE_READ(sk, __sk_common.skc_dport);
	if (io_already_seen((__u64)sk, peer, dport))
		return 0;
	return kprobe_sock(sk, kind);
}

SEC("kprobe/tcp_connect")
int BPF_KPROBE(fsa_kp_connect, struct sock *sk)
{
	return kprobe_sock(sk, FSA_KIND_CONNECT);
}

SEC("kretprobe/inet_csk_accept")
int BPF_KRETPROBE(fsa_kr_accept, struct sock *sk)
{
	return kprobe_sock(sk, FSA_KIND_ACCEPT);
}

SEC("kprobe/tcp_sendmsg")
int BPF_KPROBE(fsa_kp_tcp_send, struct sock *sk)
{
	return kprobe_io(sk, FSA_KIND_IO);
}

SEC("kprobe/tcp_recvmsg")
int BPF_KPROBE(fsa_kp_tcp_recv, struct sock *sk)
{
	return kprobe_io(sk, FSA_KIND_IO);
}

SEC("kprobe/udp_sendmsg")
int BPF_KPROBE(fsa_kp_udp_send, struct sock *sk)
{
	return kprobe_io(sk, FSA_KIND_UDP_SEND);
}

SEC("kprobe/udpv6_sendmsg")
int BPF_KPROBE(fsa_kp_udp6_snd, struct sock *sk)
{
	return kprobe_io(sk, FSA_KIND_UDP_SEND);
}

SEC("kprobe/tcp_close")
int BPF_KPROBE(fsa_kp_close, struct sock *sk)
{
	return kprobe_sock(sk, FSA_KIND_CLOSE);
}
