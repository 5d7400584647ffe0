//! The open streams of one HTTP/2 connection, by stream id.
//!
//! A [`Stream`] is a few hundred bytes. In a `BTreeMap<u32, Stream>` each insertion and removal
//! moves it through several layers of node handles (the exchange-cost profile counted six
//! copies per stream closed), so the streams live in slots of a vector instead, reused as
//! streams close, and the ordered map holds only the slot of each id: a stream is written once
//! when it opens and moved once when it closes. Iteration by id ([`StreamTable::keys`],
//! [`StreamTable::iter`]) keeps the map's order (lowest id first), which stream eviction and
//! the end of a connection report in.

use std::collections::BTreeMap;

use super::stream::Stream;

/// Slot capacity kept once no stream is open; a burst of concurrent streams (RFC 9113
/// §5.1.2) gives back its slots when it is over.
const SLOTS_KEPT: usize = 8;

/// Open streams by id.
#[derive(Debug, Default)]
pub(crate) struct StreamTable {
    /// Slot in `slots` of each open stream.
    ids: BTreeMap<u32, u32>,
    /// Streams, `None` in free slots.
    slots: Vec<Option<Stream>>,
    /// Free slots, reused last freed first.
    free: Vec<u32>,
}

impl StreamTable {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn contains_key(&self, sid: &u32) -> bool {
        self.ids.contains_key(sid)
    }

    pub fn get(&self, sid: &u32) -> Option<&Stream> {
        let i = *self.ids.get(sid)?;
        self.slots[i as usize].as_ref()
    }

    pub fn get_mut(&mut self, sid: &u32) -> Option<&mut Stream> {
        let i = *self.ids.get(sid)?;
        self.slots[i as usize].as_mut()
    }

    /// Opens stream `sid` (replacing one open under the same id, as a map would).
    pub fn insert(&mut self, sid: u32, stream: Stream) {
        if let Some(&i) = self.ids.get(&sid) {
            self.slots[i as usize] = Some(stream);
            return;
        }
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(stream);
                i
            }
            None => {
                self.slots.push(Some(stream));
                (self.slots.len() - 1) as u32
            }
        };
        self.ids.insert(sid, i);
    }

    /// Closes stream `sid`, handing it back.
    pub fn remove(&mut self, sid: &u32) -> Option<Stream> {
        let i = self.ids.remove(sid)?;
        let stream = self.slots[i as usize].take();
        if self.ids.is_empty() && self.slots.len() > SLOTS_KEPT {
            self.slots = Vec::new();
            self.free = Vec::new();
        } else {
            self.free.push(i);
        }
        stream
    }

    /// Open stream ids, lowest first.
    pub fn keys(&self) -> impl Iterator<Item = &u32> {
        self.ids.keys()
    }

    /// Open streams, lowest id first.
    pub fn iter(&self) -> impl Iterator<Item = (&u32, &Stream)> {
        self.ids
            .iter()
            .filter_map(|(sid, &i)| self.slots[i as usize].as_ref().map(|s| (sid, s)))
    }

    /// Open streams whose id is in `ids`, lowest first.
    pub fn range(
        &self,
        ids: impl std::ops::RangeBounds<u32>,
    ) -> impl Iterator<Item = (&u32, &Stream)> {
        self.ids
            .range(ids)
            .filter_map(|(sid, &i)| self.slots[i as usize].as_ref().map(|s| (sid, s)))
    }

    /// Open streams, in no particular order.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Stream> {
        self.slots.iter_mut().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::l7::PacketCtx;

    fn stream(ts_ns: u64) -> Stream {
        let at = PacketCtx {
            ts_ns,
            ..PacketCtx::default()
        };
        Stream::new(&at, false)
    }

    #[test]
    fn behaves_as_an_ordered_map() {
        let mut t = StreamTable::new();
        let mut m = BTreeMap::new();
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for step in 0..5000u64 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let sid = (rng % 40) as u32 * 2 + 1;
            if rng & (1 << 40) != 0 {
                t.insert(sid, stream(step));
                m.insert(sid, step);
            } else {
                assert_eq!(
                    t.remove(&sid).map(|s| s.last_ns),
                    m.remove(&sid),
                    "step {step}"
                );
            }
            assert_eq!(t.len(), m.len());
            assert_eq!(t.get(&sid).map(|s| s.last_ns), m.get(&sid).copied());
            assert_eq!(t.contains_key(&sid), m.contains_key(&sid));
            let ours: Vec<(u32, u64)> = t.iter().map(|(&k, s)| (k, s.last_ns)).collect();
            let theirs: Vec<(u32, u64)> = m.iter().map(|(&k, &v)| (k, v)).collect();
            assert_eq!(ours, theirs);
            assert!(t.keys().copied().eq(m.keys().copied()));
            let below: Vec<u32> = t.range(..sid).map(|(&k, _)| k).collect();
            assert!(below.iter().copied().eq(m.range(..sid).map(|(&k, _)| k)));
            let above: Vec<u32> = t.range(sid + 1..).map(|(&k, _)| k).collect();
            assert!(above
                .iter()
                .copied()
                .eq(m.range(sid + 1..).map(|(&k, _)| k)));
            let mut all: Vec<u64> = t.values_mut().map(|s| s.last_ns).collect();
            all.sort_unstable();
            let mut want: Vec<u64> = m.values().copied().collect();
            want.sort_unstable();
            assert_eq!(all, want);
        }
    }
}
