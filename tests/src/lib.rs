//! Test support: network namespaces, veth pairs, server and agent launchers.
