/* Kernel/userspace contract for flowscope's syscall spans.
 *
 * The programs in syscalls.bpf.c push one `struct fss_event` per finished syscall of a traced
 * process into the `syscall_events` ring buffer. The Rust mirror is
 * ebpf-kprobe/src/syscalls/wire.rs; a unit test there reads the _Static_assert lines at the
 * bottom of this file and checks its ranges agree. Change both together.
 */
#ifndef FLOWSCOPE_SYSCALLS_H
#define FLOWSCOPE_SYSCALLS_H

/* `fd_kind`: what the syscall's first argument refers to. */
#define FSS_FD_NONE 0 /* not an fd (openat's path), or unreadable */
#define FSS_FD_FILE 1 /* a regular file, pipe, device...: anything but a socket */
#define FSS_FD_SOCKET 2 /* a TCP or UDP socket over IP: `family`, addresses and ports are set */
#define FSS_FD_OTHER_SOCKET 3 /* a socket of another family or protocol (unix, netlink...) */

/* One ring record. 208 bytes. Addresses in network byte order (v4 in the first 4 bytes),
 * ports in host byte order. */
struct fss_event {
	__u64 enter_ns; /* bpf_ktime_get_ns (CLOCK_MONOTONIC) at the syscall's entry */
	__u64 exit_ns; /* ... and at its exit */
	__s64 ret; /* the return value: bytes, an fd, or -errno */
	__u64 args[3]; /* the first three arguments as the syscall got them */
	__u32 pid; /* tgid */
	__u32 tid;
	__s32 nr; /* syscall number (architecture's table) */
	__u16 family; /* FSS_FD_SOCKET: AF_INET or AF_INET6 */
	__u8 fd_kind; /* FSS_FD_* */
	__u8 protocol; /* FSS_FD_SOCKET: IPPROTO_TCP or IPPROTO_UDP */
	__u8 saddr[16]; /* local address */
	__u8 daddr[16]; /* remote address */
	__u16 sport; /* local port */
	__u16 dport; /* remote port */
	__u32 path_len; /* bytes of `path` used (with its NUL), 0 when none */
	char path[104]; /* openat/open: the path argument, cut to 103 bytes */
};

/* A syscall in flight (`fss_inflight`, per thread). */
struct fss_start {
	__u64 enter_ns;
	__u64 args[3];
	__s32 nr;
	__u32 _pad;
};

/* Indices of the per-CPU `fss_counters` array. */
#define FSS_CNT_EVENTS 0 /* records written to the ring */
#define FSS_CNT_RING_FULL 1 /* records lost because the ring was full */
#define FSS_CNT_NO_ENTRY 2 /* exits whose entry was not seen, of processes selected by pid (traced after it began, or map full) */
#define FSS_CNT_INFLIGHT_FULL 3 /* entries not remembered: the in-flight map was full */
#define FSS_CNT_MAX 4

/* The layout the Rust mirror (src/syscalls/wire.rs) assumes; its test reads these lines. */
_Static_assert(sizeof(struct fss_event) == 208, "fss_event size");
_Static_assert(__builtin_offsetof(struct fss_event, enter_ns) == 0, "enter_ns");
_Static_assert(__builtin_offsetof(struct fss_event, exit_ns) == 8, "exit_ns");
_Static_assert(__builtin_offsetof(struct fss_event, ret) == 16, "ret");
_Static_assert(__builtin_offsetof(struct fss_event, args) == 24, "args");
_Static_assert(__builtin_offsetof(struct fss_event, pid) == 48, "pid");
_Static_assert(__builtin_offsetof(struct fss_event, tid) == 52, "tid");
_Static_assert(__builtin_offsetof(struct fss_event, nr) == 56, "nr");
_Static_assert(__builtin_offsetof(struct fss_event, family) == 60, "family");
_Static_assert(__builtin_offsetof(struct fss_event, fd_kind) == 62, "fd_kind");
_Static_assert(__builtin_offsetof(struct fss_event, protocol) == 63, "protocol");
_Static_assert(__builtin_offsetof(struct fss_event, saddr) == 64, "saddr");
_Static_assert(__builtin_offsetof(struct fss_event, daddr) == 80, "daddr");
_Static_assert(__builtin_offsetof(struct fss_event, sport) == 96, "sport");
_Static_assert(__builtin_offsetof(struct fss_event, dport) == 98, "dport");
_Static_assert(__builtin_offsetof(struct fss_event, path_len) == 100, "path_len");
_Static_assert(__builtin_offsetof(struct fss_event, path) == 104, "path");

#endif
