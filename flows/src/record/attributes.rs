//! Span attributes: the list a span carries, shared with its counterpart's or built when first
//! read from the exchange it describes ([`AttributeSource`]).

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use super::{attr, AttributeValue, SpanKind};

/// Span attributes in insertion order; serialises as a JSON object.
///
/// A small vector rather than a map: a span has about fifteen attributes with static names,
/// and building a map of owned strings per span was a third of the engine's time.
///
/// The vector is shared (`Arc`) between an exchange's two spans: the counterpart built for
/// the other end ([`Attributes::share_with_peer`]) differs only in `network.peer.*`, kept
/// beside the shared list as `peer`. Copying the list element by element cost as much as
/// building it again (~45 instructions per attribute); sharing it costs a reference count. A
/// span without a counterpart keeps its list unshared (no `Arc` allocated). Any change
/// (`insert`) first gives the span a list of its own with `peer` folded in.
///
/// An exchange's spans may also hold their attributes unbuilt ([`Attributes::lazy`]): the
/// exchange they describe ([`AttributeSource`]) and the end they are seen from. The list is
/// built on first read (printing, export, `get`, `iter`), the same list the builder would
/// have made; the request metrics read no list at all but the source's
/// [`AttributeSource::metric_identity`] ([`Attributes::metric_identity`]), and build the
/// labels from the list only for a label set not seen before. An agent whose spans feed only
/// `/metrics` then builds none of them (BENCHMARKS.md, "Spans built when read").
#[derive(Clone, Default)]
pub struct Attributes {
    list: List,
    /// `(index, value)` pairs overriding `list`'s values at those indices (the two
    /// `network.peer.*` ones of a counterpart).
    peer: Option<[(usize, AttributeValue); 2]>,
}

type AttributeList = Vec<(Cow<'static, str>, AttributeValue)>;

/// A span's attribute list: its own, shared with its counterpart, or built when first read.
#[derive(Clone)]
enum List {
    Own(AttributeList),
    Shared(Arc<AttributeList>),
    // Inline, not boxed: a box would be one more allocation and free per span.
    Lazy(Lazy),
}

/// Attributes not built yet: the exchange's source, the end its span is seen from, and the
/// list once built.
#[derive(Clone)]
struct Lazy {
    source: Arc<dyn AttributeSource>,
    kind: SpanKind,
    built: OnceLock<AttributeList>,
}

impl Lazy {
    fn list(&self) -> &AttributeList {
        self.built
            .get_or_init(|| self.source.attributes(self.kind).0)
    }
}

/// An exchange whose spans' attributes are built when first read ([`Attributes::lazy`]).
///
/// The contract that lets the request metrics skip the list: for a given `kind`, two sources
/// (of any type) that write the same [`metric_identity`](Self::metric_identity) bytes build
/// lists with the same values under every key of [`attr::METRIC_KEYS`]. Other attributes
/// (ports, sizes, the user agent, a query) may differ, and should be left out of the bytes, so
/// that exchanges with the same labels share one cached label set.
pub(crate) trait AttributeSource: fmt::Debug + Send + Sync {
    /// The span attributes of the exchange seen from its `kind` end, as its builder sets them.
    fn attributes(&self, kind: SpanKind) -> NewAttributes;

    /// Appends bytes that determine the values of [`attr::METRIC_KEYS`] in
    /// [`attributes(kind)`](Self::attributes), starting with a byte that names the source's
    /// type (so that no two types' bytes can be equal by accident).
    fn metric_identity(&self, kind: SpanKind, out: &mut Vec<u8>);
}

impl Default for List {
    fn default() -> Self {
        Self::Own(Vec::new())
    }
}

impl List {
    fn as_slice(&self) -> &[(Cow<'static, str>, AttributeValue)] {
        match self {
            Self::Own(list) => list,
            Self::Shared(list) => list,
            Self::Lazy(lazy) => lazy.list(),
        }
    }
}

impl Attributes {
    /// No attributes.
    pub fn new() -> Self {
        Self {
            list: List::Own(Vec::with_capacity(16)),
            peer: None,
        }
    }

    /// The attributes of `source`'s exchange seen from its `kind` end, built when first
    /// read (see the type's doc).
    pub(crate) fn lazy(source: Arc<dyn AttributeSource>, kind: SpanKind) -> Self {
        Self {
            list: List::Lazy(Lazy {
                source,
                kind,
                built: OnceLock::new(),
            }),
            peer: None,
        }
    }

    /// The same exchange's attributes seen from its `kind` end, when these are unbuilt
    /// ([`Attributes::lazy`]); `None` for a list (changed or built as a list).
    pub(crate) fn lazy_for(&self, kind: SpanKind) -> Option<Self> {
        match &self.list {
            List::Lazy(lazy) => Some(Self::lazy(lazy.source.clone(), kind)),
            _ => None,
        }
    }

    /// For attributes held unbuilt ([`Attributes::lazy`]), appends a tag byte and their
    /// source's [`AttributeSource::metric_identity`] to `out` and returns true: equal bytes,
    /// equal values under [`attr::METRIC_KEYS`], whatever else differs. For a list, writes
    /// nothing and returns false (read the keys from the list).
    pub fn metric_identity(&self, out: &mut Vec<u8>) -> bool {
        match &self.list {
            List::Lazy(lazy) => {
                out.push(METRIC_IDENTITY_TAG);
                lazy.source.metric_identity(lazy.kind, out);
                true
            }
            _ => false,
        }
    }

    /// The list to change: this span's own, with `peer` folded in.
    fn own(&mut self) -> &mut AttributeList {
        if let List::Lazy(lazy) = &mut self.list {
            let list = lazy
                .built
                .take()
                .unwrap_or_else(|| lazy.source.attributes(lazy.kind).0);
            self.list = List::Own(list);
        }
        if let List::Shared(shared) = &self.list {
            let mut list = AttributeList::clone(shared);
            for (i, v) in self.peer.take().into_iter().flatten() {
                if let Some(slot) = list.get_mut(i) {
                    slot.1 = v;
                }
            }
            self.list = List::Own(list);
        }
        match &mut self.list {
            List::Own(list) => list,
            // Not reached (made `Own` above); as `make_mut` it would still be right.
            List::Shared(shared) => Arc::make_mut(shared),
            List::Lazy(_) => unreachable!("made `Own` above"),
        }
    }

    /// Sets `key` to `value`, replacing an earlier value.
    pub fn insert(&mut self, key: impl Into<Cow<'static, str>>, value: AttributeValue) {
        let key = key.into();
        let list = self.own();
        match list.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => list.push((key, value)),
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&AttributeValue> {
        let list = self.list.as_slice();
        let i = list.iter().position(|(k, _)| k == key)?;
        let (a, va, b, vb) = self.overrides();
        Some(if i == a {
            va
        } else if i == b {
            vb
        } else {
            &list[i].1
        })
    }

    /// `peer` as `(index, value, index, value)`; indices no attribute has when there is none
    /// (so that `iter` compares two numbers per attribute, and nothing else).
    fn overrides(&self) -> (usize, &AttributeValue, usize, &AttributeValue) {
        static UNUSED: AttributeValue = AttributeValue::Bool(false);
        match &self.peer {
            Some([(a, va), (b, vb)]) => (*a, va, *b, vb),
            None => (usize::MAX, &UNUSED, usize::MAX, &UNUSED),
        }
    }

    /// The same attributes with `network.peer.address` and `network.peer.port` holding
    /// `address` and `port`: the exchange's attributes as its other end sees them (see
    /// `engine::counterpart_of`). Shares the list (moving `self`'s into an `Arc` the first
    /// time); only the two values are the copy's own (a list without both keys, or one that
    /// is itself a counterpart's, is copied instead).
    pub(crate) fn share_with_peer(
        &mut self,
        address: AttributeValue,
        port: AttributeValue,
    ) -> Self {
        let mut at = [usize::MAX; 2];
        for (i, (k, _)) in self.list.as_slice().iter().enumerate() {
            if k == attr::NETWORK_PEER_ADDRESS {
                at[0] = i;
            } else if k == attr::NETWORK_PEER_PORT {
                at[1] = i;
            }
            if at[0] != usize::MAX && at[1] != usize::MAX {
                break;
            }
        }
        let [a, p] = at;
        if a == usize::MAX || p == usize::MAX || self.peer.is_some() {
            let mut own = self.clone();
            let list = own.own();
            for (k, v) in list.iter_mut() {
                if k == attr::NETWORK_PEER_ADDRESS {
                    *v = address.clone();
                } else if k == attr::NETWORK_PEER_PORT {
                    *v = port.clone();
                }
            }
            return own;
        }
        if let List::Own(list) = &mut self.list {
            self.list = List::Shared(Arc::new(std::mem::take(list)));
        }
        Self {
            list: self.list.clone(),
            peer: Some([(a, address), (p, port)]),
        }
    }

    /// `(key, value)` pairs in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &AttributeValue)> {
        let (a, va, b, vb) = self.overrides();
        self.list
            .as_slice()
            .iter()
            .enumerate()
            .map(move |(i, (k, v))| {
                let v = if i == a {
                    va
                } else if i == b {
                    vb
                } else {
                    v
                };
                (k.as_ref(), v)
            })
    }

    /// Number of attributes.
    pub fn len(&self) -> usize {
        self.list.as_slice().len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.list.as_slice().is_empty()
    }
}

/// The first byte [`Attributes::metric_identity`] writes: none of a list-built metrics key's
/// field tags (which are small numbers).
const METRIC_IDENTITY_TAG: u8 = 0xEE;

/// A span's attributes as its builder sets them, before they become [`Attributes`]: a plain
/// vector, so that each `push_new` is a push.
pub(crate) struct NewAttributes(AttributeList);

impl NewAttributes {
    /// No attributes, with room for a span's usual number.
    pub(crate) fn new() -> Self {
        Self(Vec::with_capacity(16))
    }

    /// Appends `key`, which the caller knows is not set yet (the engine's span builders set
    /// each semantic-convention key once), without `insert`'s search for an earlier value.
    pub(crate) fn push_new(&mut self, key: &'static str, value: AttributeValue) {
        debug_assert!(
            self.0.iter().all(|(k, _)| k != key),
            "span attribute {key} set twice"
        );
        self.0.push((Cow::Borrowed(key), value));
    }
}

impl From<NewAttributes> for Attributes {
    fn from(a: NewAttributes) -> Self {
        Self {
            list: List::Own(a.0),
            peer: None,
        }
    }
}

/// As the list it holds: `Attributes([(key, value), ...])`.
impl fmt::Debug for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pairs: Vec<_> = self.iter().collect();
        f.debug_tuple("Attributes").field(&pairs).finish()
    }
}

/// Equal when the pairs are, in order (however each side holds them).
impl PartialEq for Attributes {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Attributes {}

impl std::ops::Index<&str> for Attributes {
    type Output = AttributeValue;
    fn index(&self, key: &str) -> &AttributeValue {
        self.get(key)
            .unwrap_or_else(|| panic!("no span attribute {key:?}"))
    }
}

impl Serialize for Attributes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Attributes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Attributes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of span attributes")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Attributes, A::Error> {
                let mut out = Attributes::new();
                while let Some((k, v)) = map.next_entry::<String, AttributeValue>()? {
                    out.insert(k, v);
                }
                Ok(out)
            }
        }
        d.deserialize_map(Visitor)
    }
}
