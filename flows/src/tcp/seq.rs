//! Sequence-number arithmetic modulo 2^32 (RFC 9293 §3.4).
//!
//! Sequence numbers wrap, so "before" and "after" only make sense within half the space:
//! `a` is before `b` when `(a - b) mod 2^32` read as a signed 32-bit number is negative.

/// Signed distance `a - b` in sequence space (RFC 9293 §3.4: comparisons are modulo 2^32).
pub fn seq_diff(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

/// True when `a` comes strictly before `b`.
pub fn seq_lt(a: u32, b: u32) -> bool {
    seq_diff(a, b) < 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_survives_wrap() {
        assert!(seq_lt(u32::MAX - 10, 5));
        assert!(!seq_lt(5, u32::MAX - 10));
        assert_eq!(seq_diff(5, u32::MAX - 10), 16);
        assert_eq!(seq_diff(u32::MAX - 10, 5), -16);
        assert!(!seq_lt(7, 7));
    }
}
