//! What the agent tells `flowscope status` beyond Hubble's ServerStatus: capture path,
//! attachments, attribution method and every drop counter.

use std::sync::{Arc, RwLock};

/// A snapshot of the agent's state, made on demand for each `GetAgentStatus` call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentStatus {
    /// Capture path in use: `tc`, `socket` or `afpacket`.
    pub capture_path: String,
    /// `(interface, attach method)` for each attached interface, e.g. `("eth0", "tcx")`.
    pub attachments: Vec<(String, String)>,
    /// How sockets are tied to processes (`kprobe`, `cgroup`, `proc`, `none`).
    pub attribution: String,
    /// Every drop, loss and cap counter, by name, in the order to print them.
    pub counters: Vec<(String, u64)>,
    /// Per process mapping a TLS library: which, and whether its plaintext is read.
    pub tls_libraries: Vec<TlsLibraryStatus>,
}

/// One process's TLS library, and whether the agent reads its plaintext (issue 19).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsLibraryStatus {
    /// Process id.
    pub pid: u32,
    /// Its comm.
    pub comm: String,
    /// The library's path in the process's mount namespace.
    pub library: String,
    /// "openssl 3", "gnutls", ...
    pub kind: String,
    /// Its plaintext is read.
    pub hooked: bool,
    /// Why not, or what is missing; empty when all is well.
    pub detail: String,
}

type Provider = Arc<dyn Fn() -> AgentStatus + Send + Sync>;

/// Where the API server gets the [`AgentStatus`] from. Cheap to clone; the agent keeps a clone
/// and calls [`StatusHandle::set`] or [`StatusHandle::set_provider`] whenever it likes.
#[derive(Clone)]
pub struct StatusHandle {
    provider: Arc<RwLock<Provider>>,
}

impl std::fmt::Debug for StatusHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StatusHandle").field(&self.get()).finish()
    }
}

impl Default for StatusHandle {
    fn default() -> Self {
        Self::new(AgentStatus::default())
    }
}

impl StatusHandle {
    /// A handle that reports `status` until told otherwise.
    pub fn new(status: AgentStatus) -> Self {
        let p: Provider = Arc::new(move || status.clone());
        Self {
            provider: Arc::new(RwLock::new(p)),
        }
    }

    /// A handle that calls `f` on every status request (read counters live there).
    pub fn from_fn(f: impl Fn() -> AgentStatus + Send + Sync + 'static) -> Self {
        let p: Provider = Arc::new(f);
        Self {
            provider: Arc::new(RwLock::new(p)),
        }
    }

    /// Replaces the reported status with a fixed value.
    pub fn set(&self, status: AgentStatus) {
        self.set_provider(move || status.clone());
    }

    /// Replaces the status source with `f`, called on every status request.
    pub fn set_provider(&self, f: impl Fn() -> AgentStatus + Send + Sync + 'static) {
        *self.provider.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(f);
    }

    /// The current status.
    pub fn get(&self) -> AgentStatus {
        let p = self
            .provider
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        p()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_is_called_each_time() {
        let n = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let h = StatusHandle::default();
        assert_eq!(h.get(), AgentStatus::default());
        let n2 = n.clone();
        h.clone().set_provider(move || AgentStatus {
            counters: vec![(
                "x".into(),
                n2.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            )],
            ..Default::default()
        });
        assert_eq!(h.get().counters[0].1, 0);
        assert_eq!(h.get().counters[0].1, 1);
    }
}
