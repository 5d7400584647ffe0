//! Metric handles cached per label set, so a span whose labels were seen before costs no
//! allocation and no SipHash.
//!
//! prometheus-client's `Family::get_or_create` hashes the owned label struct with the
//! standard library's SipHash under a lock, and the caller must build that struct (a `String`
//! per label) for every observation: at 10k req/s that was a fifth of the agent's CPU (malloc,
//! free and SipHash; BENCHMARKS.md, "Quiet-machine check"). A counter or histogram handle is
//! an `Arc` clone of the one in the family, so looking it up once per distinct label set and
//! keeping it here observes into the very same series: `/metrics` is unchanged.
//!
//! The cache key is the observation's raw label inputs (borrowed from the span) written as
//! bytes into a reused buffer, each text field length-prefixed and each field of a fixed
//! shape at its place, so that no two field lists share a key; the map hashes it with
//! foldhash. The cache is bounded: when full it is emptied and fills again
//! with the label sets in use (handles stay valid: the series live in the families).

use std::collections::HashMap;

/// Most label sets kept per cache; past it the cache starts over.
pub const MAX_CACHED_LABEL_SETS: usize = 4096;

/// Handles `H` by raw label inputs.
#[derive(Debug)]
pub struct LabelCache<H> {
    map: HashMap<Box<[u8]>, H, foldhash::fast::RandomState>,
    key: Vec<u8>,
    cap: usize,
}

impl<H> Default for LabelCache<H> {
    fn default() -> Self {
        Self::new(MAX_CACHED_LABEL_SETS)
    }
}

impl<H> LabelCache<H> {
    /// A cache of at most `cap` label sets.
    pub fn new(cap: usize) -> Self {
        Self {
            map: HashMap::default(),
            key: Vec::new(),
            cap: cap.max(1),
        }
    }

    /// Starts a new key; add its fields with the returned builder.
    pub fn key(&mut self) -> KeyBuilder<'_> {
        self.key.clear();
        KeyBuilder(&mut self.key)
    }

    /// The handles cached under the key last built.
    pub fn get(&mut self) -> Option<&mut H> {
        self.map.get_mut(self.key.as_slice())
    }

    /// Caches `handles` under the key last built.
    pub fn insert(&mut self, handles: H) -> &mut H {
        if self.map.len() >= self.cap {
            self.map.clear();
        }
        self.map
            .entry(self.key.as_slice().into())
            .or_insert(handles)
    }

    /// Forgets every label set (tests: the uncached path).
    #[cfg(test)]
    pub fn clear(&mut self) {
        self.map.clear();
    }

    /// Label sets cached now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }
}

/// Writes the fields of a cache key (see [`LabelCache::key`]).
/// Raw bytes, not text: no number is formatted per observation (`write!` showed in profiles).
pub struct KeyBuilder<'a>(&'a mut Vec<u8>);

impl KeyBuilder<'_> {
    /// Adds a text field.
    pub fn str(self, s: &str) -> Self {
        // Length-prefixed: ("a", "bc") and ("ab", "c") are different keys.
        self.0.extend_from_slice(&s.len().to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
        self
    }

    /// Adds a small tag then a text field (the bytes of `.tag(t).str(s)`, in two writes
    /// instead of three: a span's key has a dozen of them).
    pub fn tagged_str(self, t: u8, s: &str) -> Self {
        let mut head = [t; 9];
        head[1..].copy_from_slice(&s.len().to_le_bytes());
        self.0.extend_from_slice(&head);
        self.0.extend_from_slice(s.as_bytes());
        self
    }

    /// Adds a number field.
    pub fn int(self, n: i64) -> Self {
        self.0.extend_from_slice(&n.to_le_bytes());
        self
    }

    /// Adds a small tag (an enum's discriminant, a flag, which variant a field is).
    pub fn tag(self, t: u8) -> Self {
        self.0.push(t);
        self
    }

    /// Lets `write` add bytes of its own (whose encoding it answers for) and returns what it
    /// returns.
    pub fn raw(self, write: impl FnOnce(&mut Vec<u8>) -> bool) -> bool {
        write(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_do_not_run_into_each_other() {
        let mut c = LabelCache::<u32>::new(8);
        c.key().str("a").str("bc");
        c.insert(1);
        c.key().str("ab").str("c");
        assert!(c.get().is_none());
        c.insert(2);
        c.key().str("a").str("bc");
        assert_eq!(c.get().copied(), Some(1));
        c.key().int(1).int(23);
        assert!(c.get().is_none());
        c.key().int(12).int(3);
        assert!(c.get().is_none());
    }

    #[test]
    fn tagged_str_is_tag_then_str() {
        let mut c = LabelCache::<u32>::new(8);
        c.key().tag(7).str("abc").tag(0).str("");
        c.insert(1);
        c.key().tagged_str(7, "abc").tagged_str(0, "");
        assert_eq!(c.get().copied(), Some(1));
    }

    #[test]
    fn starts_over_when_full() {
        let mut c = LabelCache::<u32>::new(2);
        for i in 0..2 {
            c.key().int(i);
            c.insert(i as u32);
        }
        assert_eq!(c.len(), 2);
        c.key().int(7);
        assert!(c.get().is_none());
        c.insert(7);
        assert_eq!(c.len(), 1);
        c.key().int(7);
        assert_eq!(c.get().copied(), Some(7), "cached");
    }
}
