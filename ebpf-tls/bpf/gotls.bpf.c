// SPDX-License-Identifier: GPL-2.0
/* flowscope TLS plaintext, Go's crypto/tls: what a Go program hands to (*tls.Conn).Write and
 * gets back from (*tls.Conn).Read. Included at the end of openssl.bpf.c: it shares the ring,
 * the counters, the scratch record and submit().
 *
 *  - Go >= 1.17 on amd64 passes arguments and results in registers (the register ABI,
 *    go.dev/s/regabi): at entry the receiver *Conn is in RAX, the slice's pointer in RBX and
 *    its length in RCX; at return n is in RAX. R14 always holds the running goroutine's g.
 *  - No uretprobes: a uretprobe replaces the return address on the stack, and Go copies a
 *    goroutine's stack elsewhere when it grows, which breaks that (crashes seen in the wild).
 *    Userspace places a uprobe on every RET instruction of the two functions instead (found
 *    by decoding their machine code), and fst_go_ret reads the result there.
 *  - State is kept per goroutine (g), not per thread: a goroutine that blocks in Read parks
 *    and resumes on whatever thread the scheduler gives it.
 *  - The socket: Go keeps the descriptor in the Conn (tls.Conn.conn, a net.Conn interface
 *    holding a *net.TCPConn -> net.conn.fd *netFD -> pfd poll.FD -> Sysfd). The field offsets
 *    come from userspace per executable (DWARF or a table by Go version), in `go_layouts`,
 *    indexed by the attach cookie. The fd is then looked up in the process's descriptor
 *    table: file -> struct socket -> struct sock gives the 4-tuple and netns. That works for
 *    a Read served from Go's buffer (no syscall at all) and for a goroutine that moved
 *    threads, where the thread-based join of the OpenSSL path would not. The lookup is made
 *    at the call's entry, while the call holds the Conn open: by the RET the peer may have
 *    read a Write's bytes and closed, and another goroutine closed the descriptor (Go sets
 *    Sysfd to -1), which lost a server's last response to a client that closes at once
 *    (curl over HTTP/2) when the writing goroutine was descheduled before its RET. These are
 *    bpf_probe_read_kernel reads (a uprobe holds no BTF pointers): under kernel lockdown
 *    (confidentiality) they fail and the plaintext comes without its socket (counted).
 */

/* Where the socket's descriptor is, for one executable's Go version. */
struct go_layout {
	__u32 conn_data; /* offset in tls.Conn of the net.Conn interface's data word */
	__u32 tcp_fd; /* offset in net.TCPConn of net.conn.fd (*netFD) */
	__u32 sysfd; /* offset in net.netFD of pfd.Sysfd */
	__u32 _pad;
	/* net.(*TCPConn).Close: fun[0] of the itab of a net.Conn holding a *net.TCPConn (the
	 * interface's methods are sorted by name); 0: not checked */
	__u64 tcp_close;
};

/* Offset of fun[0] in Go's runtime itab: inter, _type, hash uint32 + 4 bytes (go1.10+). */
#define GO_ITAB_FUN0 24

#define FST_GO_LAYOUTS 1024

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FST_GO_LAYOUTS);
	__type(key, __u32); /* the uprobe's attach cookie */
	__type(value, struct go_layout);
} go_layouts SEC(".maps");

struct go_key {
	__u64 g;
	__u32 tgid;
	__u32 _pad;
};

/* What the entry found of the Conn's socket (counted at the RET, once per event). */
#define GO_SOCK_FOUND 0
#define GO_SOCK_NONE 1 /* FST_CNT_NO_SOCKET */
#define GO_SOCK_NOT_TCP 2 /* FST_CNT_GO_NOT_TCP */

/* A Read or Write in flight on a goroutine, from entry to its RET. */
struct go_call {
	__u64 conn;
	__u64 buf;
	__u32 layout;
	__u8 kind;
	__u8 sock_state; /* GO_SOCK_* */
	__u8 _pad[2];
	struct sock_info sock;
};

/* LRU: a goroutine that panics out of a call never reaches a RET. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct go_key);
	__type(value, struct go_call);
} go_calls SEC(".maps");

static __always_inline struct go_key go_key_of(struct pt_regs *ctx)
{
	struct go_key k = {};
	k.g = ctx->r14;
	k.tgid = bpf_get_current_pid_tgid() >> 32;
	return k;
}

/* The descriptor `fd` of the current process: its TCP socket, if it is one. */
static __always_inline int go_fd_sock(__s64 fd, struct sock_info *s)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
		return -1;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = NULL;
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) != 0 || !f)
		return -1;
	struct socket *so = BPF_CORE_READ(f, private_data);
	/* Any file's private_data is read here; only a socket's points back at its file. */
	if (!so || BPF_CORE_READ(so, file) != f)
		return -1;
	struct sock *sk = BPF_CORE_READ(so, sk);
	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return -1;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family == AF_INET) {
		__u32 a = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__u32 b = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(s->saddr, &a, 4);
		__builtin_memcpy(s->daddr, &b, 4);
	} else if (family == AF_INET6) {
		BPF_CORE_READ_INTO(&s->saddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&s->daddr, sk, __sk_common.skc_v6_daddr);
	} else {
		return -1;
	}
	s->family = family;
	s->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	s->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	s->netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	/* bpf_get_socket_cookie takes no plain sock pointer in a uprobe; the cookie it would
	 * return is stored in the socket once made (sock_gen_cookie), and the packet capture
	 * asks for it on the socket's first packet. 0 when nobody asked yet. */
	s->cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	return 0;
}

/* The Conn's descriptor, following the layout's offsets through the process's memory;
 * `state` says why not (GO_SOCK_*) when it is -1. */
static __always_inline __s64 go_conn_fd(__u64 conn, __u32 layout, __u8 *state)
{
	*state = GO_SOCK_NONE;
	struct go_layout *l = bpf_map_lookup_elem(&go_layouts, &layout);
	if (!l)
		return -1;
	__u64 tcp = 0, nfd = 0;
	__s64 fd = -1;
	if (l->tcp_close) {
		/* Only a *net.TCPConn has the layout followed below. */
		__u64 tab = 0, fun0 = 0;
		if (l->conn_data < 8 ||
		    bpf_probe_read_user(&tab, sizeof(tab), (void *)(conn + l->conn_data - 8)) != 0 ||
		    !tab ||
		    bpf_probe_read_user(&fun0, sizeof(fun0), (void *)(tab + GO_ITAB_FUN0)) != 0 ||
		    fun0 != l->tcp_close) {
			*state = GO_SOCK_NOT_TCP;
			return -1;
		}
	}
	if (bpf_probe_read_user(&tcp, sizeof(tcp), (void *)(conn + l->conn_data)) != 0 || !tcp)
		return -1;
	if (bpf_probe_read_user(&nfd, sizeof(nfd), (void *)(tcp + l->tcp_fd)) != 0 || !nfd)
		return -1;
	if (bpf_probe_read_user(&fd, sizeof(fd), (void *)(nfd + l->sysfd)) != 0)
		return -1;
	*state = GO_SOCK_FOUND;
	return fd;
}

static __always_inline int go_enter(struct pt_regs *ctx, __u8 kind)
{
	struct go_key k = go_key_of(ctx);
	struct go_call c = {};
	c.conn = ctx->ax;
	c.buf = ctx->bx;
	c.kind = kind;
	c.layout = (__u32)bpf_get_attach_cookie(ctx);
	__s64 fd = go_conn_fd(c.conn, c.layout, &c.sock_state);
	if (c.sock_state == GO_SOCK_FOUND && (fd < 0 || go_fd_sock(fd, &c.sock) != 0))
		c.sock_state = GO_SOCK_NONE;
	/* A call restarted after its stack grew runs the entry again: the same state. */
	bpf_map_update_elem(&go_calls, &k, &c, BPF_ANY);
	return 0;
}

SEC("uprobe/go_tls_write")
int fst_go_write(struct pt_regs *ctx)
{
	return go_enter(ctx, FST_KIND_WRITE);
}

SEC("uprobe/go_tls_read")
int fst_go_read(struct pt_regs *ctx)
{
	return go_enter(ctx, FST_KIND_READ);
}


/* On every RET of (*tls.Conn).Read and Write: n is in RAX. */
SEC("uprobe/go_tls_ret")
int fst_go_ret(struct pt_regs *ctx)
{
	struct go_key k = go_key_of(ctx);
	struct go_call *c = bpf_map_lookup_elem(&go_calls, &k);
	if (!c) {
		count(FST_CNT_GO_NO_ENTRY);
		return 0;
	}
	__s64 moved = (__s64)ctx->ax;
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
	e->ssl = c->conn;
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->kind = c->kind;
	e->flags = FST_F_GO;
	e->len = moved > 0x7fffffff ? 0x7fffffff : (__u32)moved;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	if (c->sock_state == GO_SOCK_FOUND) {
		e->flags |= FST_F_SOCK;
		e->cookie = c->sock.cookie;
		e->netns = c->sock.netns;
		e->family = c->sock.family;
		e->sport = c->sock.sport;
		e->dport = c->sock.dport;
		__builtin_memcpy(e->saddr, c->sock.saddr, 16);
		__builtin_memcpy(e->daddr, c->sock.daddr, 16);
	} else {
		count(c->sock_state == GO_SOCK_NOT_TCP ? FST_CNT_GO_NOT_TCP : FST_CNT_NO_SOCKET);
	}
	__u32 n = e->len;
	if (n > FST_MAX_DATA) {
		count(FST_CNT_TRUNCATED);
		n = FST_MAX_DATA;
	}
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
	bpf_map_delete_elem(&go_calls, &k);
	return 0;
}
