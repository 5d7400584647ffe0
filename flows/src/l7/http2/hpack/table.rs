//! HPACK indexing tables (RFC 7541 §2.3): the static table (Appendix A) and a dynamic table
//! that may be only partly known.
//!
//! A connection joined mid-way has a dynamic table whose older entries we never saw. Entries
//! are indexed newest first (§2.3.3: the newest is index 62), so every entry inserted since
//! capture began has an exact index even when the ones before it are unknown: the table is a
//! FIFO of known entries plus, possibly, an "unknown tail" of older ones. A reference past the
//! known entries resolves to "unknown" while the tail may exist. The tail is gone for sure
//! after a size update to 0 (§4.2 — it evicts everything), after an entry larger than a known
//! maximum (§4.4), or once the known entries leave no room in a known maximum for even an
//! empty entry (32 bytes, §4.1).

use std::collections::VecDeque;

/// RFC 7541 Appendix A, index 1..=61.
pub const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// §4.1: an entry's size is its name and value lengths plus 32.
pub const ENTRY_OVERHEAD: usize = 32;

/// One dynamic table entry; the name is unknown when it was indexed from an unknown entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Field name, when known.
    pub name: Option<super::FieldBytes>,
    /// Field value.
    pub value: super::FieldBytes,
}

impl Entry {
    /// §4.1 size; with an unknown name, a lower bound.
    pub fn size(&self) -> usize {
        self.name.as_ref().map_or(0, |n| n.len()) + self.value.len() + ENTRY_OVERHEAD
    }
}

/// What an index refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// A static table entry (borrowed for good: fields from it are not allocated).
    Static(&'static str, &'static str),
    /// A dynamic entry inserted since capture began.
    Dynamic(&'a Entry),
    /// An entry older than the capture: exists, content unknown.
    Unknown,
    /// No such entry (index 0, or past the end of a fully known table).
    Invalid,
}

/// The dynamic table of one direction, possibly with an unknown tail.
#[derive(Debug, Clone)]
pub struct DynamicTable {
    /// Known entries, newest first.
    entries: VecDeque<Entry>,
    /// Sum of the known entries' sizes (a lower bound when a name is unknown).
    size: usize,
    /// Maximum size in force (§4.2); our memory cap when not known.
    max_size: usize,
    /// Whether `max_size` is the encoder's actual maximum (seen since capture began).
    max_known: bool,
    /// Older entries may exist that we never saw.
    unknown_tail: bool,
    /// Most bytes we hold, whatever the peer allows.
    cap: usize,
}

/// SETTINGS_HEADER_TABLE_SIZE's initial value (RFC 9113 §6.5.2).
pub const DEFAULT_MAX_SIZE: usize = 4096;

impl DynamicTable {
    /// A table whose whole history is known (the connection was seen from its preface).
    pub fn known(cap: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            size: 0,
            max_size: DEFAULT_MAX_SIZE.min(cap),
            max_known: DEFAULT_MAX_SIZE <= cap,
            unknown_tail: DEFAULT_MAX_SIZE > cap,
            cap,
        }
    }

    /// A table of a connection joined mid-way: nothing known yet.
    pub fn unknown(cap: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            size: 0,
            max_size: cap,
            max_known: false,
            unknown_tail: true,
            cap,
        }
    }

    /// Forgets everything (a field block was lost): later insertions are exact again.
    pub fn forget(&mut self) {
        *self = Self::unknown(self.cap);
    }

    /// True when every entry's index is known.
    pub fn fully_known(&self) -> bool {
        !self.unknown_tail
    }

    /// Known entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no entry is known.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes held (for the connection's memory accounting).
    pub fn bytes(&self) -> usize {
        self.size
    }

    /// Resolves index `i` (§2.3.3: 1..=61 static, 62.. dynamic, newest first).
    pub fn get(&self, i: usize) -> Lookup<'_> {
        match i {
            0 => Lookup::Invalid,
            1..=61 => {
                let (n, v) = STATIC_TABLE[i - 1];
                Lookup::Static(n, v)
            }
            _ => match self.entries.get(i - 62) {
                Some(e) => Lookup::Dynamic(e),
                None if self.unknown_tail => Lookup::Unknown,
                None => Lookup::Invalid,
            },
        }
    }

    /// §4.3/§4.4: inserts at the front, evicting from the back to stay within the maximum.
    pub fn insert(&mut self, e: Entry) {
        let size = e.size();
        if size > self.max_size {
            // §4.4: "an attempt to add an entry larger than the maximum size causes the table
            // to be emptied of all existing entries and results in an empty table".
            self.entries.clear();
            self.size = 0;
            if self.max_known {
                self.unknown_tail = false;
            }
            return;
        }
        self.evict_to(self.max_size - size);
        self.size += size;
        self.entries.push_front(e);
        self.settle_tail();
    }

    /// §4.2/§6.3: a dynamic table size update to `new_max`. `limit` is the receiver's
    /// SETTINGS_HEADER_TABLE_SIZE when known; returns false when the update exceeds it
    /// (a decoding error per §6.3; we apply what fits).
    pub fn resize(&mut self, new_max: usize, limit: Option<usize>) -> bool {
        let within = limit.is_none_or(|l| new_max <= l);
        if new_max > self.cap {
            // More than we hold: entries past the cap fall off early and become unknown.
            self.max_size = self.cap;
            self.max_known = false;
            self.evict_to(self.cap);
            self.unknown_tail = true;
            return within;
        }
        self.max_size = new_max;
        self.max_known = true;
        self.evict_to(new_max);
        if new_max == 0 {
            self.unknown_tail = false;
        }
        self.settle_tail();
        within
    }

    fn evict_to(&mut self, room: usize) {
        while self.size > room {
            match self.entries.pop_back() {
                Some(old) => self.size -= old.size(),
                None => {
                    self.size = 0;
                    break;
                }
            }
        }
    }

    /// With a known maximum, known entries that leave no room for an empty entry mean no
    /// older (unknown) entry can still be in the table.
    fn settle_tail(&mut self) {
        if self.unknown_tail && self.max_known && self.size + ENTRY_OVERHEAD > self.max_size {
            self.unknown_tail = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(n: &str, v: &str) -> Entry {
        Entry {
            name: Some(n.as_bytes().into()),
            value: v.as_bytes().into(),
        }
    }

    #[test]
    fn static_indices() {
        assert_eq!(
            DynamicTable::known(4096).get(2),
            Lookup::Static(":method", "GET")
        );
        assert_eq!(
            DynamicTable::known(4096).get(61),
            Lookup::Static("www-authenticate", "")
        );
        assert_eq!(DynamicTable::known(4096).get(62), Lookup::Invalid);
        assert_eq!(DynamicTable::known(4096).get(0), Lookup::Invalid);
    }

    #[test]
    fn partial_table_resolves_new_entries_exactly() {
        let mut t = DynamicTable::unknown(65536);
        assert_eq!(t.get(62), Lookup::Unknown);
        t.insert(e("a", "1"));
        t.insert(e("b", "2"));
        assert_eq!(t.get(62), Lookup::Dynamic(&e("b", "2")));
        assert_eq!(t.get(63), Lookup::Dynamic(&e("a", "1")));
        assert_eq!(t.get(64), Lookup::Unknown);
        assert!(!t.fully_known());
        t.resize(0, None);
        assert!(t.fully_known());
        assert_eq!(t.get(62), Lookup::Invalid);
    }

    #[test]
    fn known_maximum_full_of_known_entries_settles_the_tail() {
        let mut t = DynamicTable::unknown(65536);
        t.resize(100, None); // 100 bytes: two 34-byte entries leave 32 bytes...
        t.insert(e("a", "1"));
        t.insert(e("b", "2"));
        assert!(!t.fully_known());
        t.insert(e("c", "22")); // ...now 34+34+35 > 100: "a" is evicted, 69 + 32 > 100.
        assert!(t.fully_known());
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn eviction_and_oversized_entries() {
        let mut t = DynamicTable::known(4096);
        t.resize(70, None);
        t.insert(e("a", "1"));
        t.insert(e("b", "2"));
        assert_eq!(t.len(), 2);
        t.insert(e("c", "3"));
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(63), Lookup::Dynamic(&e("b", "2")));
        t.insert(e("big", &"x".repeat(100)));
        assert!(t.is_empty());
        assert!(!t.resize(8192, Some(4096)));
    }
}
