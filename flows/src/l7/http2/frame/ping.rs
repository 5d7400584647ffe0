//! PING (RFC 9113 §6.7): `Opaque Data (64)` on stream 0.

/// §6.7: "Receipt of a PING frame with a length field value other than 8 MUST be treated as
/// a connection error".
pub const LEN: u32 = 8;
