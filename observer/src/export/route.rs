//! Keeping metric label cardinality bounded: URL paths become route templates (ids replaced by
//! `{id}`), and each service keeps at most N distinct routes, the rest counted under `other`.

use std::collections::{HashMap, HashSet};

/// The label value for routes (or peers) past the cap.
pub const OVERFLOW: &str = "other";

/// `/users/123/orders/9f8e...` -> `/users/{id}/orders/{id}`.
///
/// A segment becomes `{id}` when it is all digits, a UUID (8-4-4-4-12 hex), or hex of 16 or
/// more digits (hashes, object ids) — the shapes that make one route per entity. Query strings
/// are cut off; an empty path is `/`.
pub fn route_template(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or("");
    if path.is_empty() || path == "/" {
        return "/".into();
    }
    let mut out = String::with_capacity(path.len());
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if is_id(seg) {
            out.push_str("{id}");
        } else {
            out.push_str(seg);
        }
    }
    out
}

fn is_id(seg: &str) -> bool {
    let b = seg.as_bytes();
    if b.is_empty() {
        return false;
    }
    if b.iter().all(u8::is_ascii_digit) {
        return true;
    }
    if is_uuid(b) {
        return true;
    }
    b.len() >= 16 && b.iter().all(u8::is_ascii_hexdigit)
}

fn is_uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Remembers which label values each key (service) has used and caps their number.
#[derive(Debug)]
pub struct LabelLimiter {
    cap: usize,
    seen:
        HashMap<String, HashSet<String, foldhash::fast::RandomState>, foldhash::fast::RandomState>,
    overflowed: u64,
}

impl LabelLimiter {
    /// At most `cap` distinct values per key.
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            seen: HashMap::default(),
            overflowed: 0,
        }
    }

    /// `value` if `key` already has it or has room for it, else [`OVERFLOW`] (counted).
    pub fn admit<'a>(&mut self, key: &str, value: &'a str) -> &'a str {
        // Look up first: the common case (a known value) allocates nothing.
        if let Some(set) = self.seen.get_mut(key) {
            if set.contains(value) {
                return value;
            }
            if set.len() >= self.cap {
                self.overflowed += 1;
                return OVERFLOW;
            }
            set.insert(value.to_string());
            return value;
        }
        let mut set = HashSet::default();
        set.insert(value.to_string());
        self.seen.insert(key.to_string(), set);
        value
    }

    /// How many observations went to [`OVERFLOW`].
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_become_placeholders() {
        let cases = [
            ("/", "/"),
            ("", "/"),
            ("/users/123", "/users/{id}"),
            ("/users/123/orders/42?x=1", "/users/{id}/orders/{id}"),
            (
                "/o/3fa85f64-5717-4562-b3fc-2c963f66afa6/items",
                "/o/{id}/items",
            ),
            ("/blob/9f86d081884c7d659a2feaa0c55ad015", "/blob/{id}"),
            ("/v1/traces", "/v1/traces"),
            ("/static/app.js", "/static/app.js"),
            ("/cafe", "/cafe"),
            ("/page.txt", "/page.txt"),
            ("/a//b/", "/a//b/"),
        ];
        for (path, want) in cases {
            assert_eq!(route_template(path), want, "{path}");
        }
    }

    #[test]
    fn limiter_caps_distinct_values_per_key() {
        let mut l = LabelLimiter::new(2);
        assert_eq!(l.admit("svc", "/a"), "/a");
        assert_eq!(l.admit("svc", "/b"), "/b");
        assert_eq!(l.admit("svc", "/c"), OVERFLOW);
        assert_eq!(l.admit("svc", "/a"), "/a");
        assert_eq!(l.admit("other-svc", "/c"), "/c");
        assert_eq!(l.overflowed(), 1);
    }
}
