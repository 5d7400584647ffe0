//! Errors of taking or mapping a ring, each naming the ring's map.

/// A ring buffer could not be taken or mapped.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    /// The map is of another type (a build problem: the C object declares it).
    #[error("the {map} map is not a ring buffer; rebuild flowscope")]
    NotARing {
        /// Map name.
        map: &'static str,
    },
    /// The kernel did not say how big the ring is.
    #[error("reading the size of the {map} ring failed: {detail}")]
    Info {
        /// Map name.
        map: &'static str,
        /// aya's message.
        detail: String,
    },
    /// The kernel only makes rings a power of two of pages; anything else is not one.
    #[error("the {map} ring's size {size} is not a power of two of pages")]
    Size {
        /// Map name.
        map: &'static str,
        /// Its `max_entries`.
        size: usize,
    },
    /// mmap of the ring's pages failed.
    #[error("mapping the {map} ring's {what} failed: {source}")]
    Mmap {
        /// Map name.
        map: &'static str,
        /// "consumer page" or "data pages".
        what: &'static str,
        /// The kernel's answer.
        #[source]
        source: std::io::Error,
    },
}
