/* SPDX-License-Identifier: GPL-2.0 */
/* Batched ring buffer wakeups, shared by the capture, attribution and TLS programs (every crate's
 * programs are compiled with this directory on the include path: ebpf-build). Include it after
 * the types and bpf_helpers.h (vmlinux.h or linux/bpf.h: both define BPF_RINGBUF_HDR_SZ).
 *
 * A program whose reader drains on a timer too asks for a wakeup when a record takes the ring's
 * unread bytes past a multiple of `every`: once per `every` bytes written, not on every record
 * while that many wait. Each wakeup is an irq_work, a self-IPI that traps to the hypervisor on a
 * VM: waking on every record while a busy reader was not yet scheduled was about half of the
 * capture program's time on nginx's CPU at saturation (BENCHMARKS.md, "Where the service's CPU
 * goes under the agent"). The unread bytes grow by a record's footprint in the ring, not its
 * size, so with one producer every multiple is seen by exactly one record; a crossing missed
 * while another CPU's record raced this one is made up by the next multiple or the reader's
 * timer. */
#ifndef FLOWSCOPE_RINGBUF_WAKEUP_H
#define FLOWSCOPE_RINGBUF_WAKEUP_H

/* Bytes a record of `size` takes in a BPF ring: its 8-byte header, 8-byte aligned. */
static __always_inline __u64 fs_ringbuf_footprint(__u64 size)
{
	return (size + BPF_RINGBUF_HDR_SZ + 7) & ~7ULL;
}

/* Flags for bpf_ringbuf_output/submit of a record of `size` bytes, when `unread` bytes (not
 * counting it) wait in the ring: BPF_RB_FORCE_WAKEUP if it takes them past a multiple of
 * `every` (> 0), else BPF_RB_NO_WAKEUP. */
static __always_inline __u64 fs_wakeup_flags(__u64 unread, __u64 size, __u32 every)
{
	/* (unread + footprint) / every != unread / every, with one division on the per-packet
	 * path instead of two. */
	return unread % every + fs_ringbuf_footprint(size) >= every ? BPF_RB_FORCE_WAKEUP :
								    BPF_RB_NO_WAKEUP;
}

#endif
