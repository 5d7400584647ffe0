//! `flowscope observe` and `flowscope status`: the client side of the Observer API.
