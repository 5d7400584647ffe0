/* Kernel/userspace contract for flowscope's TLS plaintext probes (openssl.bpf.c).
 *
 * Every record in the `events` ring starts with `struct fst_event`; a WRITE or READ record is
 * followed by `captured` bytes of plaintext. EXEC records (a bare `struct fst_event`) go to the
 * small `execs` ring, so the agent maps the big one only once a TLS library is hooked. The Rust mirror is ebpf-tls/src/wire.rs; a unit
 * test there reads the _Static_assert lines at the bottom of this file. Change both together.
 */
#ifndef FLOWSCOPE_TLS_H
#define FLOWSCOPE_TLS_H

/* What a record reports (`kind`). */
#define FST_KIND_WRITE 1 /* SSL_write/SSL_write_ex returned: plaintext the process sent */
#define FST_KIND_READ 2 /* SSL_read/SSL_read_ex returned: plaintext the process received */
#define FST_KIND_EXEC 3 /* a process exec'd: userspace looks for TLS libraries in its maps */

/* `flags` */
#define FST_F_SOCK 1 /* family/addresses/ports/cookie/netns name the TCP socket */
#define FST_F_SOCK_CACHED 2 /* ... learned in an earlier call on this SSL* (no syscall in this one) */
#define FST_F_SOCK_THREAD 4 /* ... the thread's last socket outside any call (memory BIOs) */
#define FST_F_GO 8 /* Go crypto/tls ((*tls.Conn).Read/Write, gotls.bpf.c); `ssl` is the *tls.Conn */

/* Most plaintext bytes copied per call; the rest of a longer call is counted (`len` -
 * `captured`) and reaches the decoders as a gap of known length. A power of two (the
 * verifier bounds the copy with a mask). */
#define FST_MAX_DATA 4096

/* One record header. 104 bytes. Addresses in network byte order (v4 in the first 4 bytes),
 * ports in host byte order. */
struct fst_event {
	__u64 ts_ns; /* bpf_ktime_get_ns (CLOCK_MONOTONIC) at the call's return */
	__u64 ssl; /* the SSL* (ties calls on one TLS connection together) */
	__u64 cookie; /* socket cookie; 0 unknown */
	__u32 pid; /* tgid */
	__u32 tid;
	__u32 netns; /* inode of the socket's network namespace */
	__u32 len; /* bytes the call moved (its return value) */
	__u32 captured; /* bytes of plaintext after this header: min(len, FST_MAX_DATA) */
	__u16 family; /* AF_INET or AF_INET6 (with FST_F_SOCK) */
	__u8 kind; /* FST_KIND_* */
	__u8 flags; /* FST_F_* */
	__u8 saddr[16]; /* local address */
	__u8 daddr[16]; /* remote address */
	__u16 sport; /* local port */
	__u16 dport; /* remote port */
	__u32 _pad;
	char comm[16];
};

/* Indices of the per-CPU `counters` array. */
#define FST_CNT_EVENTS 0 /* records written to the ring */
#define FST_CNT_RING_FULL 1 /* records lost because the ring was full */
#define FST_CNT_TRUNCATED 2 /* calls that moved more than FST_MAX_DATA bytes (rest is a gap) */
#define FST_CNT_READ_FAULT 3 /* plaintext the probe could not read from the process (paged out) */
#define FST_CNT_NO_SOCKET 4 /* calls with no TCP socket syscall seen on their thread nor cached */
#define FST_CNT_NESTED 5 /* a call began while another was in flight on the thread (ignored) */
/* Go crypto/tls (gotls.bpf.c) */
#define FST_CNT_GO_NO_ENTRY 6 /* a RET of Read/Write on a goroutine with no entry seen (probes placed mid-call) */
#define FST_CNT_GO_NOT_TCP 7 /* a tls.Conn over something else than a *net.TCPConn: no socket */
/* Soak memory (the `execs` ring) */
#define FST_CNT_EXEC_LOST 8 /* exec records lost because the execs ring was full (the periodic rescan finds their libraries) */
#define FST_CNT_MAX 9

_Static_assert(sizeof(struct fst_event) == 104, "fst_event size");
_Static_assert(__builtin_offsetof(struct fst_event, ts_ns) == 0, "ts_ns");
_Static_assert(__builtin_offsetof(struct fst_event, ssl) == 8, "ssl");
_Static_assert(__builtin_offsetof(struct fst_event, cookie) == 16, "cookie");
_Static_assert(__builtin_offsetof(struct fst_event, pid) == 24, "pid");
_Static_assert(__builtin_offsetof(struct fst_event, tid) == 28, "tid");
_Static_assert(__builtin_offsetof(struct fst_event, netns) == 32, "netns");
_Static_assert(__builtin_offsetof(struct fst_event, len) == 36, "len");
_Static_assert(__builtin_offsetof(struct fst_event, captured) == 40, "captured");
_Static_assert(__builtin_offsetof(struct fst_event, family) == 44, "family");
_Static_assert(__builtin_offsetof(struct fst_event, kind) == 46, "kind");
_Static_assert(__builtin_offsetof(struct fst_event, flags) == 47, "flags");
_Static_assert(__builtin_offsetof(struct fst_event, saddr) == 48, "saddr");
_Static_assert(__builtin_offsetof(struct fst_event, daddr) == 64, "daddr");
_Static_assert(__builtin_offsetof(struct fst_event, sport) == 80, "sport");
_Static_assert(__builtin_offsetof(struct fst_event, dport) == 82, "dport");
_Static_assert(__builtin_offsetof(struct fst_event, comm) == 88, "comm");

#endif
