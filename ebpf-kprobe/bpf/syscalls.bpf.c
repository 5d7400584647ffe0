// SPDX-License-Identifier: GPL-2.0
/* flowscope syscall spans: what a traced process's threads do in the kernel while they serve
 * a request (file opens, reads, writes, fsyncs, connects and socket I/O), one record per
 * finished syscall.
 *
 * Programs attached by userspace to many `syscalls:sys_{enter,exit}_*` tracepoints (only the
 * syscalls of interest, so the rest of the machine's syscalls never run them):
 *  - fss_enter (fss_enter1 for one-argument syscalls) remembers the entry time and first three arguments per thread;
 *  - fss_exit joins them with the return value and, for an fd argument, what the fd is: a
 *    TCP/UDP socket (with both ends, so userspace ties the syscall to a captured flow) or
 *    anything else. openat/open also carry their path, read from user memory.
 *
 * Only threads of traced processes are followed: a tgid in `fss_pids`, or a process whose
 * main thread's comm is in `fss_comms` (so processes started later are traced too). Both maps
 * are filled by userspace from the user's selection; tracing is off unless asked for.
 *
 * The fd walk (task->files->fdt->fd[fd] -> file -> socket -> sock) is the one
 * attribution.bpf.c does for accept(2); the program never writes to user memory.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "syscalls.h"
#include "sock_ends.h"

char LICENSE[] SEC("license") = "GPL";

#define S_IFMT 00170000
#define S_IFSOCK 0140000

/* Syscall numbers whose first argument is a path, not an fd (set by the loader: they differ
 * between architectures, and arm64 has no open(2)). -1: none. */
const volatile __s32 cfg_nr_openat = -1;
const volatile __s32 cfg_nr_open = -1;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} syscall_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FSS_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} fss_counters SEC(".maps");

/* Traced processes by tgid. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u8);
} fss_pids SEC(".maps");

/* Traced processes by the comm of their main thread (16 bytes, NUL padded). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, char[16]);
	__type(value, __u8);
} fss_comms SEC(".maps");

/* Syscalls in flight, per thread. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct fss_start);
} fss_inflight SEC(".maps");

/* The tracepoint context: 8 bytes of common fields, the syscall number, then the six
 * arguments (enter) or the return value (exit), each in an 8-byte slot. */
struct enter_ctx {
	__u64 common;
	__s32 nr;
	__u32 _pad;
	__u64 args[6];
};

struct exit_ctx {
	__u64 common;
	__s32 nr;
	__u32 _pad;
	__s64 ret;
};

static __always_inline void count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&fss_counters, &idx);
	if (c)
		*c += 1;
}

static __always_inline int traced(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (bpf_map_lookup_elem(&fss_pids, &tgid))
		return 1;
	char comm[16] = {};
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	BPF_CORE_READ_STR_INTO(&comm, task, group_leader, comm);
	return bpf_map_lookup_elem(&fss_comms, &comm) != NULL;
}

static __always_inline void enter(__s32 nr, __u64 a0, __u64 a1, __u64 a2)
{
	if (!traced())
		return;
	struct fss_start s = {
		.enter_ns = bpf_ktime_get_ns(),
		.args = { a0, a1, a2 },
		.nr = nr,
	};
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	if (bpf_map_update_elem(&fss_inflight, &tid, &s, BPF_ANY))
		count(FSS_CNT_INFLIGHT_FULL);
}

/* Syscalls of three arguments or more. */
SEC("tracepoint/syscalls/sys_enter_read")
int fss_enter(struct enter_ctx *ctx)
{
	enter(ctx->nr, ctx->args[0], ctx->args[1], ctx->args[2]);
	return 0;
}

/* Syscalls of one argument (close, fsync, fdatasync): the kernel refuses to attach a program
 * that reads past the end of the tracepoint's record. */
SEC("tracepoint/syscalls/sys_enter_fsync")
int fss_enter1(struct enter_ctx *ctx)
{
	enter(ctx->nr, ctx->args[0], 0, 0);
	return 0;
}

/* What `fd` of the current task is; for a TCP/UDP socket over IP, its two ends. */
static __always_inline void describe_fd(struct fss_event *e, long fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	unsigned int max_fds = BPF_CORE_READ(fdt, max_fds);
	if (fd < 0 || fd >= max_fds)
		return;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = NULL;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	if (!f)
		return;
	umode_t mode = BPF_CORE_READ(f, f_inode, i_mode);
	if ((mode & S_IFMT) != S_IFSOCK) {
		e->fd_kind = FSS_FD_FILE;
		return;
	}
	e->fd_kind = FSS_FD_OTHER_SOCKET;
	struct socket *sock = BPF_CORE_READ(f, private_data);
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (sk && read_sock_ends(sk, &e->family, &e->protocol, e->saddr, e->daddr, &e->sport,
				 &e->dport) == 0)
		e->fd_kind = FSS_FD_SOCKET;
}

static __always_inline void on_exit(__s32 nr, long ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct fss_start *s = bpf_map_lookup_elem(&fss_inflight, &tid);
	if (!s) {
		/* Most threads are not traced: count only exits of processes selected by pid (a
		 * hash lookup; reading the comm here too doubled the cost every syscall of every
		 * untraced process pays, bench/syscall_cost.sh). */
		__u32 tgid = bpf_get_current_pid_tgid() >> 32;
		if (bpf_map_lookup_elem(&fss_pids, &tgid))
			count(FSS_CNT_NO_ENTRY);
		return;
	}
	struct fss_start start = *s;
	bpf_map_delete_elem(&fss_inflight, &tid);
	if (start.nr != nr)
		return; /* an entry left over from a syscall that never exited (exec, exit) */
	struct fss_event *e = bpf_ringbuf_reserve(&syscall_events, sizeof(*e), 0);
	if (!e) {
		count(FSS_CNT_RING_FULL);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	__u64 id = bpf_get_current_pid_tgid();
	e->enter_ns = start.enter_ns;
	e->exit_ns = bpf_ktime_get_ns();
	e->ret = ret;
	e->args[0] = start.args[0];
	e->args[1] = start.args[1];
	e->args[2] = start.args[2];
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->nr = nr;
	if (nr == cfg_nr_openat || nr == cfg_nr_open) {
		const char *path = (const char *)(nr == cfg_nr_openat ? start.args[1] : start.args[0]);
		long n = bpf_probe_read_user_str(e->path, sizeof(e->path), path);
		e->path_len = n > 0 ? n : 0;
	} else {
		describe_fd(e, (long)start.args[0]);
	}
	count(FSS_CNT_EVENTS);
	bpf_ringbuf_submit(e, 0);
}

SEC("tracepoint/syscalls/sys_exit_read")
int fss_exit(struct exit_ctx *ctx)
{
	on_exit(ctx->nr, ctx->ret);
	return 0;
}

/* ---- Fallback where the per-syscall tracepoints can't be opened (no tracefs in the agent's
 * mount namespace, e.g. under `ip netns exec` on kernels that do not automount it): the
 * generic sys_enter/sys_exit raw tracepoints by BTF, which need no tracefs but run for every
 * syscall on the machine, so they look the number up first. ---- */

/* Syscall numbers followed (value 1), set by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 512);
	__type(key, __u32);
	__type(value, __u8);
} fss_watched SEC(".maps");

static __always_inline int watched(long nr)
{
	if (nr < 0 || nr >= 512)
		return 0;
	__u32 k = nr;
	__u8 *w = bpf_map_lookup_elem(&fss_watched, &k);
	return w && *w;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(fss_sys_enter, struct pt_regs *regs, long id)
{
	if (!watched(id))
		return 0;
#if defined(__TARGET_ARCH_arm64)
	enter(id, regs->orig_x0, regs->regs[1], regs->regs[2]);
#else
	enter(id, regs->di, regs->si, regs->dx);
#endif
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(fss_sys_exit, struct pt_regs *regs, long ret)
{
#if defined(__TARGET_ARCH_arm64)
	long nr = regs->syscallno;
#else
	long nr = regs->orig_ax;
#endif
	if (!watched(nr))
		return 0;
	on_exit(nr, ret);
	return 0;
}
