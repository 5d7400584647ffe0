//! PRIORITY (RFC 9113 §6.3): `E (1) Stream Dependency (31) Weight (8)`, exactly 5 bytes.
//! Deprecated (§5.3.2); we check and ignore it.

/// §6.3: "A PRIORITY frame with a length other than 5 octets MUST be treated as a stream
/// error".
pub const LEN: u32 = 5;
