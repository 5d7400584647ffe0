//! `flowscope observe` and `flowscope status`: the client side of the Observer API, and the
//! printers `replay` shares.

pub mod client;
pub mod filters;
pub mod json;
pub mod observe;
pub mod printer;
pub mod status;
pub mod time;
