/* Kernel/userspace contract for flowscope process attribution.
 *
 * Every program in attribution.bpf.c pushes one `struct fsa_sock_event` per observation into the
 * `events` ring buffer. The Rust mirror is ebpf-kprobe/src/wire.rs; a unit test there reads the
 * _Static_assert lines at the bottom of this file and checks its ranges agree. Change both
 * together.
 */
#ifndef FLOWSCOPE_ATTRIBUTION_H
#define FLOWSCOPE_ATTRIBUTION_H

/* What was observed (`kind`). */
#define FSA_KIND_CONNECT 1 /* a process connected a socket (TCP or UDP) */
#define FSA_KIND_ACCEPT 2 /* a process accepted a TCP connection */
#define FSA_KIND_STATE 3 /* a TCP state change (no process: may run in softirq) */
#define FSA_KIND_CLOSE 4 /* a TCP socket reached TCP_CLOSE: forget it after a grace period */
#define FSA_KIND_UDP_SEND 5 /* a process sent on an unconnected UDP socket (deduplicated) */
#define FSA_KIND_UDP_RECV 6 /* a process received on an unconnected UDP socket (deduplicated) */
#define FSA_KIND_IO 7 /* a process sent or received on a TCP or connected UDP socket (kprobe path, or
                       * the socket tracepoints; deduplicated per socket, peer and process) */

/* `flags` */
#define FSA_F_COOKIE 1 /* `cookie` is valid */
#define FSA_F_LOCAL 2 /* `saddr`/`sport` are valid (saddr may still be the wildcard) */
#define FSA_F_REMOTE 4 /* `daddr`/`dport` are valid */
#define FSA_F_PROCESS 8 /* pid, tid, comm, cgroup_id are the socket's owner */
#define FSA_F_NETNS 16 /* `netns` is valid */

/* One ring record. 96 bytes. Addresses in network byte order (v4 in the first 4 bytes), ports
 * in host byte order. */
struct fsa_sock_event {
	__u64 ts_ns; /* bpf_ktime_get_ns (CLOCK_MONOTONIC) */
	__u64 cookie; /* socket cookie (bpf_get_socket_cookie / sk_cookie) */
	__u64 cgroup_id; /* cgroup v2 id of the process (inode of its cgroup directory) */
	__u32 pid; /* tgid: what userspace calls the pid */
	__u32 tid; /* the thread */
	__u32 netns; /* inode of the network namespace */
	__u16 family; /* AF_INET or AF_INET6; 0 when neither address is known */
	__u8 protocol; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 kind; /* FSA_KIND_* */
	__u8 saddr[16]; /* local address */
	__u8 daddr[16]; /* remote address */
	__u16 sport; /* local port */
	__u16 dport; /* remote port */
	__u8 flags; /* FSA_F_* */
	__u8 old_state; /* TCP state before (FSA_KIND_STATE/CLOSE) */
	__u8 new_state; /* TCP state after */
	__u8 _pad;
	char comm[16]; /* task comm at the event: short-lived processes are gone before userspace looks */
};

/* Indices of the per-CPU `counters` array. */
#define FSA_CNT_EVENTS 0 /* records written to the ring */
#define FSA_CNT_RING_FULL 1 /* records lost because the ring was full */
#define FSA_CNT_DEDUP 2 /* send/recv observations skipped because the owner was already reported */
#define FSA_CNT_NO_SOCK 3 /* accept/connect exits whose socket could not be read from the fd table */
#define FSA_CNT_MAX 4

/* The layout the Rust mirror (src/wire.rs) assumes; its test reads these lines. */
_Static_assert(sizeof(struct fsa_sock_event) == 96, "fsa_sock_event size");
_Static_assert(__builtin_offsetof(struct fsa_sock_event, ts_ns) == 0, "ts_ns");
_Static_assert(__builtin_offsetof(struct fsa_sock_event, cookie) == 8, "cookie");
_Static_assert(__builtin_offsetof(struct fsa_sock_event, cgroup_id) == 16, "cgroup_id");
_Static_assert(__builtin_offsetof(struct fsa_sock_event, pid) == 24, "pid");
_Static_assert(__builtin_offsetof(struct fsa_sock_event, tid) == 28, "tid");
_Static_assert(__builtin_offsetof(struct fsa_sock_event, netns) == 32, "netns");
_Static_assert(__builtin_offsetof(struct fsa_sock_event, family) == 36, "family");
_Static_assert(__builtin_offsetof(struct fsa_sock_event, protocol) == 38, "protocol");
_Static_assert(__builtin_offsetof(struct fsa_sock_event, kind) == 39, "kind");
_Static_assert(__builtin_offsetof(struct fsa_sock_event, saddr) == 40, "saddr");
_Static_assert(__builtin_offsetof(struct fsa_sock_event, daddr) == 56, "daddr");
_Static_assert(__builtin_offsetof(struct fsa_sock_event, sport) == 72, "sport");
_Static_assert(__builtin_offsetof(struct fsa_sock_event, dport) == 74, "dport");
_Static_assert(__builtin_offsetof(struct fsa_sock_event, flags) == 76, "flags");
_Static_assert(__builtin_offsetof(struct fsa_sock_event, old_state) == 77, "old_state");
_Static_assert(__builtin_offsetof(struct fsa_sock_event, new_state) == 78, "new_state");
_Static_assert(__builtin_offsetof(struct fsa_sock_event, comm) == 80, "comm");

#endif
