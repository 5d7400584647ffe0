// SPDX-License-Identifier: GPL-2.0
/* flowscope TLS plaintext: what a process hands to OpenSSL (1.1 and 3.x, dynamically linked
 * libssl.so.*) and what it gets back, read with uprobes, tied to the TCP socket underneath.
 *
 *  - uprobe SSL_write/SSL_write_ex/SSL_read/SSL_read_ex: remember (SSL*, buffer, length
 *    pointer) for the calling thread;
 *  - uretprobe on the same: the call's result says how many bytes moved (`ret` > 0, or 1 and
 *    `*written`/`*readbytes` for the _ex forms); copy up to FST_MAX_DATA of them from the
 *    buffer with bpf_probe_read_user and push them to the ring. Nothing is ever written to
 *    the process, and a probe never waits: a full ring drops the record (counted).
 *  - The socket: tp_btf/sock_send_length and tp_btf/sock_recv_length fire inside every
 *    socket send/receive (read, write, send and recv calls on a socket all reach sock_sendmsg or
 *    sock_recvmsg) with the `struct sock` in hand. When the thread is inside an SSL call, that
 *    socket is the one the call's TLS records went over. This ties a call to its socket
 *    whatever BIO the application installed: nginx's SSL_set_fd (a socket BIO on the fd),
 *    curl's own BIO over its connection filters, a memory BIO pumped by the same thread. The
 *    SSL* -> fd link from SSL_set_fd alone would not cover custom BIOs, and reading the rbio's
 *    fd means following OpenSSL's private struct layouts, which differ between versions. A
 *    call that needs no syscall (SSL_read served from a record already read) uses the
 *    socket learned for its SSL* in an earlier call (FST_F_SOCK_CACHED), else the thread's
 *    last socket before the call (FST_F_SOCK_THREAD: libraries that drive OpenSSL through
 *    memory BIOs, like gRPC, read the socket on the same thread, then call SSL_read).
 *    The socket's fields are direct BTF loads: no bpf_probe_read_kernel, so this works under
 *    kernel lockdown. Kernels without those two tracepoints (before ~6.3) get the same link
 *    from fentry on tcp_sendmsg/tcp_recvmsg instead, or kprobes there without BPF
 *    trampolines (chosen by the loader).
 *  - tracepoint sched_process_exec: tells userspace (through the small `execs` ring) a process
 *    started, so it can look for a TLS library in its maps (the uprobes are per library file: a new process using a
 *    library already hooked is covered without a new attach).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "tls.h"
#include "ringbuf_wakeup.h"

char LICENSE[] SEC("license") = "GPL";

#define AF_INET 2
#define AF_INET6 10

/* 0: wake the reader on every record. N: once per N bytes written while unread (the reader
 * polls too). */
const volatile __u32 cfg_wakeup_bytes = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

/* EXEC records only: the reader of `events` maps it (8 MiB in its RSS) only once a TLS library
 * is hooked, and the exec events are how the first one is found. A record wakes the reader
 * when it had read everything before (the ring's default), so an idle agent needs no timer
 * for it; the reader then reads at most every 100 ms; ~100-byte records, so 64 KiB holds
 * ~600 execs between two reads. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 << 10);
} execs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FST_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* The socket a call's TLS records went over. */
struct sock_info {
	__u64 cookie;
	__u32 netns;
	__u16 family;
	__u16 sport;
	__u16 dport;
	__u16 _pad;
	__u8 saddr[16];
	__u8 daddr[16];
};

/* An SSL call in flight on a thread, from entry to return. */
struct call {
	__u64 ssl;
	__u64 buf;
	__u64 len_out; /* size_t * of the _ex forms; 0 for SSL_read/SSL_write */
	__u8 kind; /* FST_KIND_WRITE or FST_KIND_READ */
	__u8 has_sock;
	__u8 _pad[6];
	struct sock_info sock;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32); /* tid */
	__type(value, struct call);
} calls SEC(".maps");

/* The socket last seen under each SSL*: for calls that make no syscall. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* SSL* | tgid << 48 would collide less, but SSL* is unique per process */
	__type(value, struct sock_info);
} ssl_sock SEC(".maps");

/* The socket each thread that makes SSL calls last sent or received on, outside a call: for
 * libraries driven through memory BIOs (gRPC), whose socket I/O happens on the same thread
 * just before SSL_read (the bytes it decrypts) or around SSL_write, never inside the call.
 * Only threads that made an SSL call have an entry (enter() creates it), so other threads'
 * socket I/O costs one failed lookup. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32); /* tid */
	__type(value, struct sock_info);
} thread_sock SEC(".maps");

/* How many threads with an entry in thread_sock map to each slot (thread id modulo
 * SSL_THREAD_SLOTS): incremented when enter() creates a thread's entry, decremented when the
 * thread exits and its entry is deleted (fst_thread_exit). The socket tracepoints below fire on
 * every send and receive of every process on the node; before this they paid two hash lookups
 * (calls, thread_sock: a jhash each, and the LRU's bookkeeping) to learn that the thread was
 * none of ours: with the tracepoint's dispatch, ~2.4% of nginx's own CPU time at saturation
 * (BENCHMARKS.md, "Where the service's CPU goes under the agent"). An array lookup is inlined by
 * the verifier: a few loads. A nonzero slot only lets the thread through to those lookups,
 * which decide as before. The count is never below the number of the slot's threads that have
 * an entry (each decrement pairs with the deletion of an entry its increment was for; an entry
 * the LRU evicts keeps its count, and a new one counts again): it can only err high, costing
 * the old path, never skip a thread that has an entry or a call in flight. Counted rather than
 * flagged so that slots free up as threads exit: a flag never cleared would, on a node that
 * keeps starting TLS clients, end up set in every slot. Atomic adds (BPF_XADD) are in every
 * BPF ISA version. */
#define SSL_THREAD_SLOTS (1 << 18)
#define SSL_THREAD_BLOCK 16
struct ssl_thread_block {
	__u32 live[SSL_THREAD_BLOCK];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SSL_THREAD_SLOTS / SSL_THREAD_BLOCK);
	__type(key, __u32);
	__type(value, struct ssl_thread_block);
} ssl_threads SEC(".maps");

/* The count of thread `tid`'s slot in ssl_threads (NULL only if the lookup fails, which it
 * can't). */
static __always_inline __u32 *ssl_thread_slot(__u32 tid)
{
	__u32 slot = tid & (SSL_THREAD_SLOTS - 1);
	__u32 block = slot / SSL_THREAD_BLOCK;
	struct ssl_thread_block *b = bpf_map_lookup_elem(&ssl_threads, &block);
	if (!b)
		return NULL;
	return &b->live[slot & (SSL_THREAD_BLOCK - 1)];
}

/* A record is built here, then copied to the ring at its real size. */
struct record {
	struct fst_event hdr;
	__u8 data[FST_MAX_DATA];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct record);
} scratch SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &idx);
	if (c)
		*c += 1;
}

static __always_inline __u64 ssl_key(__u64 ssl)
{
	/* The same heap address can be an SSL* in two processes. */
	return ssl ^ ((bpf_get_current_pid_tgid() >> 32) << 48);
}

static __always_inline int enter(__u64 ssl, __u64 buf, __u64 len_out, __u8 kind)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	/* The thread's entry (and its slot's count) first: the socket tracepoints let the thread
	 * through from here on, before its call's entry below exists. */
	struct sock_info none = {};
	if (bpf_map_update_elem(&thread_sock, &tid, &none, BPF_NOEXIST) == 0) {
		__u32 *live = ssl_thread_slot(tid);
		if (live)
			__sync_fetch_and_add(live, 1);
	}
	struct call c = {};
	c.ssl = ssl;
	c.buf = buf;
	c.len_out = len_out;
	c.kind = kind;
	/* OpenSSL does not call itself through these entry points; a second entry is a
	 * recursion we do not follow (the first call keeps its slot). */
	if (bpf_map_update_elem(&calls, &tid, &c, BPF_NOEXIST) != 0)
		count(FST_CNT_NESTED);
	return 0;
}

static __always_inline void submit(struct record *r, __u32 size)
{
	__u64 flags = 0;
	if (cfg_wakeup_bytes)
		flags = fs_wakeup_flags(bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA), size,
					cfg_wakeup_bytes);
	if (bpf_ringbuf_output(&events, r, size, flags) == 0)
		count(FST_CNT_EVENTS);
	else
		count(FST_CNT_RING_FULL);
}

/* The call on this thread returned having moved `moved` bytes (<= 0: nothing). */
static __always_inline int leave(long moved, int ex)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct call *c = bpf_map_lookup_elem(&calls, &tid);
	if (!c)
		return 0;
	if (ex) {
		/* SSL_read_ex/SSL_write_ex return 1 on success and the count through a pointer. */
		__u64 n = 0;
		if (moved == 1 && c->len_out &&
		    bpf_probe_read_user(&n, sizeof(n), (void *)c->len_out) == 0)
			moved = (long)n;
		else
			moved = 0;
	}
	if (moved <= 0)
		goto out;
	__u32 zero = 0;
	struct record *r = bpf_map_lookup_elem(&scratch, &zero);
	if (!r)
		goto out;
	struct fst_event *e = &r->hdr;
	__builtin_memset(e, 0, sizeof(*e));
	__u64 id = bpf_get_current_pid_tgid();
	e->ts_ns = bpf_ktime_get_ns();
	e->ssl = c->ssl;
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->kind = c->kind;
	e->len = moved > 0x7fffffff ? 0x7fffffff : (__u32)moved;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	__u64 key = ssl_key(c->ssl);
	struct sock_info *s = NULL;
	if (c->has_sock) {
		s = &c->sock;
		e->flags |= FST_F_SOCK;
	} else {
		s = bpf_map_lookup_elem(&ssl_sock, &key);
		if (s) {
			e->flags |= FST_F_SOCK | FST_F_SOCK_CACHED;
		} else {
			s = bpf_map_lookup_elem(&thread_sock, &tid);
			if (s && s->family) {
				e->flags |= FST_F_SOCK | FST_F_SOCK_THREAD;
				/* Other threads' calls on this SSL* (gRPC writes from another thread
				 * than it reads on) take it from here; a call with real socket I/O
				 * replaces it. */
				bpf_map_update_elem(&ssl_sock, &key, s, BPF_NOEXIST);
			} else {
				s = NULL;
			}
		}
		if (!s)
			count(FST_CNT_NO_SOCKET);
	}
	if (s) {
		e->cookie = s->cookie;
		e->netns = s->netns;
		e->family = s->family;
		e->sport = s->sport;
		e->dport = s->dport;
		__builtin_memcpy(e->saddr, s->saddr, 16);
		__builtin_memcpy(e->daddr, s->daddr, 16);
	}
	__u32 n = e->len;
	if (n > FST_MAX_DATA) {
		count(FST_CNT_TRUNCATED);
		n = FST_MAX_DATA;
	}
	/* The mask keeps the verifier sure of the bound; n <= FST_MAX_DATA already. */
	n &= (FST_MAX_DATA << 1) - 1;
	if (n > FST_MAX_DATA)
		n = FST_MAX_DATA;
	if (bpf_probe_read_user(r->data, n, (void *)c->buf) != 0) {
		count(FST_CNT_READ_FAULT);
		n = 0;
	}
	e->captured = n;
	submit(r, sizeof(struct fst_event) + n);
out:
	bpf_map_delete_elem(&calls, &tid);
	return 0;
}

SEC("uprobe/SSL_write")
int BPF_KPROBE(fst_write, void *ssl, const void *buf, int num)
{
	return enter((__u64)ssl, (__u64)buf, 0, FST_KIND_WRITE);
}

SEC("uretprobe/SSL_write")
int BPF_KRETPROBE(fst_write_ret, int ret)
{
	return leave(ret, 0);
}

SEC("uprobe/SSL_write_ex")
int BPF_KPROBE(fst_write_ex, void *ssl, const void *buf, size_t num, size_t *written)
{
	return enter((__u64)ssl, (__u64)buf, (__u64)written, FST_KIND_WRITE);
}

SEC("uretprobe/SSL_write_ex")
int BPF_KRETPROBE(fst_write_ex_ret, int ret)
{
	return leave(ret, 1);
}

SEC("uprobe/SSL_read")
int BPF_KPROBE(fst_read, void *ssl, void *buf, int num)
{
	return enter((__u64)ssl, (__u64)buf, 0, FST_KIND_READ);
}

SEC("uretprobe/SSL_read")
int BPF_KRETPROBE(fst_read_ret, int ret)
{
	return leave(ret, 0);
}

SEC("uprobe/SSL_read_ex")
int BPF_KPROBE(fst_read_ex, void *ssl, void *buf, size_t num, size_t *readbytes)
{
	return enter((__u64)ssl, (__u64)buf, (__u64)readbytes, FST_KIND_READ);
}

SEC("uretprobe/SSL_read_ex")
int BPF_KRETPROBE(fst_read_ex_ret, int ret)
{
	return leave(ret, 1);
}

/* The thread's SSL call in flight (*c), else its last-socket slot (*last): 0 when the thread
 * has neither (it never made an SSL call), so its socket I/O is none of ours. */
static __always_inline int sock_io_wanted(struct call **c, struct sock_info **last)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	*c = NULL;
	*last = NULL;
	/* Most threads on a node never make an SSL call: one inlined load decides for them. */
	__u32 *live = ssl_thread_slot(tid);
	if (!live || !*live)
		return 0;
	*c = bpf_map_lookup_elem(&calls, &tid);
	if (*c)
		return 1;
	*last = bpf_map_lookup_elem(&thread_sock, &tid);
	return *last != NULL;
}

/* A socket send or receive on a thread inside an SSL call: that call's socket; on a thread
 * outside one that has made SSL calls: its last socket (see thread_sock). */
static __always_inline void note_sock(struct call *c, struct sock_info *last,
				      const struct sock_info *s)
{
	if (!c) {
		*last = *s;
		return;
	}
	c->sock = *s;
	c->has_sock = 1;
	__u64 key = ssl_key(c->ssl);
	bpf_map_update_elem(&ssl_sock, &key, s, BPF_ANY);
}

/* `sk` is a BTF pointer (tp_btf, fentry): direct loads. */
static __always_inline void on_sock_io(struct sock *sk)
{
	struct call *c;
	struct sock_info *last;
	if (!sock_io_wanted(&c, &last) || !sk)
		return;
	if (sk->sk_protocol != IPPROTO_TCP)
		return;
	__u16 family = sk->__sk_common.skc_family;
	struct sock_info s = {};
	if (family == AF_INET) {
		__u32 a = sk->__sk_common.skc_rcv_saddr;
		__u32 b = sk->__sk_common.skc_daddr;
		__builtin_memcpy(s.saddr, &a, 4);
		__builtin_memcpy(s.daddr, &b, 4);
	} else if (family == AF_INET6) {
		__u32 a[4], b[4];
		for (int i = 0; i < 4; i++) {
			a[i] = sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[i];
			b[i] = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[i];
		}
		__builtin_memcpy(s.saddr, a, 16);
		__builtin_memcpy(s.daddr, b, 16);
	} else {
		return;
	}
	s.family = family;
	s.sport = sk->__sk_common.skc_num;
	s.dport = bpf_ntohs(sk->__sk_common.skc_dport);
	s.cookie = bpf_get_socket_cookie(sk);
	struct net *net = sk->__sk_common.skc_net.net;
	if (net)
		s.netns = net->ns.inum;
	note_sock(c, last, &s);
}

/* `sk` is a plain kernel address (kprobe): CO-RE reads (bpf_probe_read_kernel, so not under
 * lockdown=confidentiality). kprobes have no bpf_get_socket_cookie: the cookie is the one the
 * socket already has (0 if nothing asked for it yet; userspace joins by the two ends). */
static __always_inline void on_sock_io_core(struct sock *sk)
{
	struct call *c;
	struct sock_info *last;
	if (!sock_io_wanted(&c, &last) || !sk)
		return;
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	struct sock_info s = {};
	if (family == AF_INET) {
		bpf_core_read(s.saddr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(s.daddr, 4, &sk->__sk_common.skc_daddr);
	} else if (family == AF_INET6) {
		bpf_core_read(s.saddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(s.daddr, 16, &sk->__sk_common.skc_v6_daddr);
	} else {
		return;
	}
	s.family = family;
	s.sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	s.dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	s.cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	s.netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	note_sock(c, last, &s);
}

/* Another module's program for the same tracepoint (the agent puts process attribution's
 * fsa_sock_send / fsa_sock_recv here), tail-called after this one's work. Every socket send
 * and receive of every process then pays one program dispatch, not two: on the machine this was
 * measured on, the dispatch (the tracepoint call, bpf_trace_run, RCU) was ~50 of the ~80 ns a
 * recv paid for a near-empty program. One array per tracepoint: a program array takes only
 * programs of its first user's attach point. An empty slot falls through. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} sock_send_next SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} sock_recv_next SEC(".maps");

SEC("tp_btf/sock_send_length")
int BPF_PROG(fst_sock_send, struct sock *sk, int ret, int flags)
{
	on_sock_io(sk);
	bpf_tail_call(ctx, &sock_send_next, 0);
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(fst_sock_recv, struct sock *sk, int ret, int flags)
{
	on_sock_io(sk);
	bpf_tail_call(ctx, &sock_recv_next, 0);
	return 0;
}

/* Kernels before ~6.3 have no sock_send_length/sock_recv_length tracepoints (Debian 12's 6.1):
 * the same link from the TCP layer's entry points, which every socket send/receive of a TCP
 * socket reaches (sock_sendmsg -> inet{,6}_sendmsg -> sk->sk_prot->sendmsg, the same for
 * receive; read/write/send/recv and their vector forms alike). fentry hands the `struct sock`
 * over as a BTF pointer, so the loads stay direct (no bpf_probe_read_kernel), as above. The
 * loader attaches these only where the tracepoints are missing (probes.rs). */
SEC("fentry/tcp_sendmsg")
int BPF_PROG(fst_tcp_send, struct sock *sk)
{
	on_sock_io(sk);
	return 0;
}

SEC("fentry/tcp_recvmsg")
int BPF_PROG(fst_tcp_recv, struct sock *sk)
{
	on_sock_io(sk);
	return 0;
}

/* Where the kernel has no BPF trampolines either (no ftrace): kprobes on the same two
 * functions. */
SEC("kprobe/tcp_sendmsg")
int BPF_KPROBE(fst_tcp_send_kp, struct sock *sk)
{
	on_sock_io_core(sk);
	return 0;
}

SEC("kprobe/tcp_recvmsg")
int BPF_KPROBE(fst_tcp_recv_kp, struct sock *sk)
{
	on_sock_io_core(sk);
	return 0;
}

/* A thread exits (sched_process_exit fires for each one): its entries go, and its slot's count
 * with its thread_sock entry (see ssl_threads). */
SEC("tracepoint/sched/sched_process_exit")
int fst_thread_exit(void *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u32 *live = ssl_thread_slot(tid);
	if (!live || !*live)
		return 0;
	bpf_map_delete_elem(&calls, &tid);
	if (bpf_map_delete_elem(&thread_sock, &tid) == 0)
		__sync_fetch_and_add(live, -1);
	return 0;
}

SEC("tracepoint/sched/sched_process_exec")
int fst_exec(void *ctx)
{
	__u32 zero = 0;
	struct record *r = bpf_map_lookup_elem(&scratch, &zero);
	if (!r)
		return 0;
	struct fst_event *e = &r->hdr;
	__builtin_memset(e, 0, sizeof(*e));
	__u64 id = bpf_get_current_pid_tgid();
	e->ts_ns = bpf_ktime_get_ns();
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->kind = FST_KIND_EXEC;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	if (bpf_ringbuf_output(&execs, e, sizeof(struct fst_event), 0) != 0)
		count(FST_CNT_EXEC_LOST);
	return 0;
}

/* Go crypto/tls: its own programs, sharing the ring, counters and records above. */
#include "gotls.bpf.c"
