/* Both ends of a kernel socket, shared by the programs that read them from a struct sock
 * (attribution.bpf.c, syscalls.bpf.c). Needs vmlinux.h and bpf_core_read.h first. */
#ifndef FLOWSCOPE_SOCK_ENDS_H
#define FLOWSCOPE_SOCK_ENDS_H

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

/* Family, protocol, addresses (network byte order, v4 in the first 4 bytes) and ports (host
 * byte order; `sport` 0 while unbound) of `sk`. Returns 0 for TCP/UDP over IPv4/IPv6, -1
 * otherwise (nothing else written then but `family`/`protocol`). */
static __always_inline int read_sock_ends(struct sock *sk, __u16 *family, __u8 *protocol,
					  __u8 saddr[16], __u8 daddr[16], __u16 *sport,
					  __u16 *dport)
{
	__u16 fam = BPF_CORE_READ(sk, __sk_common.skc_family);
	__u16 proto = BPF_CORE_READ(sk, sk_protocol);
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return -1;
	if (fam == AF_INET) {
		__u32 s = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__u32 d = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(saddr, &s, 4);
		__builtin_memcpy(daddr, &d, 4);
	} else if (fam == AF_INET6) {
		bpf_core_read(saddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(daddr, 16, &sk->__sk_common.skc_v6_daddr);
	} else {
		return -1;
	}
	*family = fam;
	*protocol = proto;
	*sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	*dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	return 0;
}

#endif
