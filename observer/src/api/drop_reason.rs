//! Hubble's `DropReason` for a kernel drop reason, where the two mean the same thing.
//!
//! Cilium's values (api/v1/flow/flow.proto `enum DropReason`, shared with its datapath's
//! bpf/lib/common.h `DROP_*`) name drops of Cilium's own BPF datapath; a few describe the same
//! event as a kernel `enum skb_drop_reason` (include/net/dropreason-core.h). Only those are
//! mapped; every other kernel reason is DROP_REASON_UNKNOWN on Hubble's field, and the
//! kernel's own name always travels in `FlowExtension.kernel_drop`.

use super::proto::flow::DropReason;

/// The Hubble reason for the kernel reason `name` (without the SKB_DROP_REASON_ prefix).
pub fn hubble_drop_reason(kernel_name: &str) -> DropReason {
    match kernel_name {
        // Kernel: "dropped by netfilter" (a firewall rule's DROP verdict). Cilium
        // DROP_POLICY "Policy denied": a network policy denied the packet.
        "NETFILTER_DROP" => DropReason::PolicyDenied,
        // Kernel: "IP reverse path filter (rp_filter) check failed": the source address is
        // not reachable back through the interface it came in on. Cilium DROP_INVALID_SIP
        // "Invalid source ip".
        "IP_RPFILTER" => DropReason::InvalidSourceIp,
        // Kernel: "packet not for this host (pkt_type PACKET_OTHERHOST)": the L2
        // destination is not this interface. Cilium DROP_INVALID_DMAC "Invalid destination
        // mac".
        "OTHERHOST" => DropReason::InvalidDestinationMac,
        // Kernel: "no support for the IP protocol" (no handler for the L4 protocol number).
        // Cilium DROP_UNKNOWN_L4 "Unknown L4 protocol".
        "IP_NOPROTO" => DropReason::UnknownL4Protocol,
        // Kernel: "invalid IPv6 extension header". Cilium DROP_INVALID_EXTHDR "Invalid IPv6
        // extension header".
        "IPV6_BAD_EXTHDR" => DropReason::InvalidIpv6ExtensionHeader,
        // Kernel: "route lookup failed" on output / "network unreachable" on input. Cilium
        // DROP_NO_FIB "No FIB entry found" (FIB_LOOKUP_FAILED).
        "IP_OUTNOROUTES" | "IP_INNOROUTES" => DropReason::FibLookupFailed,
        _ => DropReason::Unknown,
    }
}

/// The name shown for a kernel reason number the running kernel does not name.
pub fn unnamed_reason(reason: u32) -> String {
    format!("UNKNOWN_{reason}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        for (kernel, hubble) in [
            ("NETFILTER_DROP", DropReason::PolicyDenied),
            ("IP_RPFILTER", DropReason::InvalidSourceIp),
            ("OTHERHOST", DropReason::InvalidDestinationMac),
            ("IP_NOPROTO", DropReason::UnknownL4Protocol),
            ("IPV6_BAD_EXTHDR", DropReason::InvalidIpv6ExtensionHeader),
            ("IP_OUTNOROUTES", DropReason::FibLookupFailed),
            ("IP_INNOROUTES", DropReason::FibLookupFailed),
            // No Hubble counterpart: the kernel name is in the extension only.
            ("NO_SOCKET", DropReason::Unknown),
            ("TCP_LISTEN_OVERFLOW", DropReason::Unknown),
            ("SOCKET_RCVBUFF", DropReason::Unknown),
        ] {
            assert_eq!(hubble_drop_reason(kernel), hubble, "{kernel}");
        }
        // Hubble's numbers (Cilium flow.proto).
        assert_eq!(DropReason::PolicyDenied as i32, 133);
        assert_eq!(DropReason::FibLookupFailed as i32, 169);
        assert_eq!(unnamed_reason(400), "UNKNOWN_400");
    }
}
