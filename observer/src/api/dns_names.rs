//! The names each address had in the DNS answers this node saw, for Hubble's
//! `source_names` / `destination_names` (what Cilium fills from its per-endpoint FQDN cache,
//! so `hubble observe` prints `api.example.org:443`).
//!
//! Fed with every DNS response flow as it passes the agent's pipeline, read when a flow
//! enters the store (so a flow keeps the names its addresses had at its time). An answer's
//! address is named by the question's name, and by the owner name of its A/AAAA record when
//! a CNAME chain led there (RFC 1034 §3.6.2: the chain's records come in the same answer
//! section). Entries expire with the answer's TTL, kept at least `min_ttl` (Cilium's
//! `--tofqdns-min-ttl` does the same: connections outlive short TTLs); the cache is bounded,
//! the entries closest to expiry going first. Names are lower-case without the root's trailing
//! dot, like Cilium's `GetNamesOf` (daemon/cmd/hubble.go trims it).

use std::{collections::HashMap, net::IpAddr, sync::Arc};

use flows::record::DnsInfo;

/// Default for `dns-names-max-entries`.
pub const DEFAULT_MAX_ENTRIES: usize = 16_384;
/// Default for `dns-names-min-ttl` (seconds).
pub const DEFAULT_MIN_TTL_SECS: u64 = 60;
/// Most names kept for one address (a CDN address can serve thousands of names).
const MAX_NAMES_PER_ADDRESS: usize = 8;

/// address -> names, with expiry. Times are ns on the flows' clock.
#[derive(Debug)]
pub struct DnsNameCache {
    max_entries: usize,
    min_ttl_ns: u64,
    /// Each address's names, most recently answered last, with when each expires.
    by_addr: HashMap<IpAddr, Vec<(Arc<str>, u64)>>,
    entries: usize,
    /// Pairs dropped before they expired, to make room (the cache was full).
    evicted: u64,
}

impl DnsNameCache {
    /// A cache of at most `max_entries` (address, name) pairs, each kept at least `min_ttl_secs`.
    pub fn new(max_entries: usize, min_ttl_secs: u64) -> Self {
        Self {
            max_entries: max_entries.max(1),
            min_ttl_ns: min_ttl_secs.saturating_mul(1_000_000_000),
            by_addr: HashMap::new(),
            entries: 0,
            evicted: 0,
        }
    }

    /// Pairs dropped before they expired because the cache was full (its cap is too low
    /// for the names this node resolves).
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// How many (address, name) pairs are held.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Learns from a DNS response seen at `now_ns`. Only successful responses (RCODE 0,
    /// RFC 1035 §4.1.1) name anything.
    pub fn observe(&mut self, dns: &DnsInfo, now_ns: u64) {
        if dns.rcode != Some(0) || dns.answers.is_empty() {
            return;
        }
        let query = normalize(&dns.query);
        if query.is_empty() {
            return;
        }
        // The CNAME chain from the question's name (RFC 1034 §3.6.2); bounded by the answers.
        let mut chain = vec![query.clone()];
        let mut grew = true;
        while grew {
            grew = false;
            for a in dns.answers.iter().filter(|a| a.rrtype == "CNAME") {
                let (owner, target) = (normalize(&a.name), normalize(&a.data));
                if chain.contains(&owner) && !chain.contains(&target) {
                    chain.push(target);
                    grew = true;
                }
            }
        }
        let query: Arc<str> = query.into();
        for a in &dns.answers {
            if a.rrtype != "A" && a.rrtype != "AAAA" {
                continue;
            }
            let owner = normalize(&a.name);
            if !chain.contains(&owner) {
                continue;
            }
            let Ok(ip) = a.data.parse::<IpAddr>() else {
                continue;
            };
            let ttl_ns = (u64::from(a.ttl) * 1_000_000_000).max(self.min_ttl_ns);
            let expires = now_ns.saturating_add(ttl_ns);
            self.insert(ip, query.clone(), expires, now_ns);
            if *owner != *query {
                self.insert(ip, owner.into(), expires, now_ns);
            }
        }
    }

    fn insert(&mut self, ip: IpAddr, name: Arc<str>, expires: u64, now_ns: u64) {
        if let Some(names) = self.by_addr.get_mut(&ip) {
            if let Some(i) = names.iter().position(|(n, _)| *n == name) {
                let (n, e) = names.remove(i);
                names.push((n, e.max(expires)));
                return;
            }
        }
        if self.entries >= self.max_entries {
            self.make_room(now_ns);
        }
        let names = self.by_addr.entry(ip).or_default();
        if names.len() >= MAX_NAMES_PER_ADDRESS {
            names.remove(0);
            self.entries -= 1;
            self.evicted += 1;
        }
        names.push((name, expires));
        self.entries += 1;
    }

    /// Drops what expired; if still full, the eighth of the entries closest to expiry (one
    /// sort per many inserts rather than a search per insert).
    fn make_room(&mut self, now_ns: u64) {
        self.retain(|e| e > now_ns);
        if self.entries < self.max_entries {
            return;
        }
        let mut expiries: Vec<u64> = self
            .by_addr
            .values()
            .flat_map(|v| v.iter().map(|(_, e)| *e))
            .collect();
        expiries.sort_unstable();
        let cut = expiries[(expiries.len() / 8).min(expiries.len() - 1)];
        let before = self.entries;
        self.retain(|e| e > cut);
        self.evicted += (before - self.entries) as u64;
    }

    fn retain(&mut self, keep: impl Fn(u64) -> bool) {
        let mut entries = 0;
        self.by_addr.retain(|_, names| {
            names.retain(|(_, e)| keep(*e));
            entries += names.len();
            !names.is_empty()
        });
        self.entries = entries;
    }

    /// The names `ip` had in unexpired answers at `now_ns`, oldest answer first.
    pub fn names(&self, ip: IpAddr, now_ns: u64) -> Vec<Arc<str>> {
        self.by_addr
            .get(&ip)
            .map(|v| {
                v.iter()
                    .filter(|(_, e)| *e > now_ns)
                    .map(|(n, _)| n.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// `API.Example.org.` -> `api.example.org`.
fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use flows::record::DnsAnswer;

    use super::*;

    const S: u64 = 1_000_000_000;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn answer(name: &str, rrtype: &str, ttl: u32, data: &str) -> DnsAnswer {
        DnsAnswer {
            name: name.into(),
            rrtype: rrtype.into(),
            ttl,
            data: data.into(),
        }
    }

    fn response(query: &str, rcode: u16, answers: Vec<DnsAnswer>) -> DnsInfo {
        DnsInfo {
            id: 1,
            query: query.into(),
            qtypes: vec!["A".into()],
            rcode: Some(rcode),
            ips: Vec::new(),
            ttl: None,
            cnames: Vec::new(),
            rrtypes: Vec::new(),
            answers,
            truncated: false,
            questions: Vec::new(),
            response_only: false,
            doh: false,
        }
    }

    fn names(c: &DnsNameCache, addr: &str, now: u64) -> Vec<String> {
        c.names(ip(addr), now)
            .iter()
            .map(|n| n.to_string())
            .collect()
    }

    #[test]
    fn a_and_aaaa_answers_name_their_addresses() {
        let mut c = DnsNameCache::new(100, 0);
        c.observe(
            &response(
                "API.Example.org.",
                0,
                vec![
                    answer("api.example.org.", "A", 30, "192.0.2.1"),
                    answer("api.example.org.", "AAAA", 30, "2001:db8::1"),
                ],
            ),
            0,
        );
        assert_eq!(names(&c, "192.0.2.1", 29 * S), ["api.example.org"]);
        assert_eq!(names(&c, "2001:db8::1", 29 * S), ["api.example.org"]);
        // Expired by the answer's TTL.
        assert!(names(&c, "192.0.2.1", 31 * S).is_empty());
    }

    #[test]
    fn a_cname_chain_resolves_to_the_queried_name() {
        let mut c = DnsNameCache::new(100, 0);
        c.observe(
            &response(
                "www.example.org.",
                0,
                vec![
                    answer("www.example.org.", "CNAME", 300, "edge.cdn.example.net."),
                    answer("edge.cdn.example.net.", "CNAME", 300, "e1.cdn.example.net."),
                    answer("e1.cdn.example.net.", "A", 20, "198.51.100.7"),
                    // Not on the chain: names nothing.
                    answer("unrelated.example.", "A", 20, "198.51.100.8"),
                ],
            ),
            0,
        );
        assert_eq!(
            names(&c, "198.51.100.7", S),
            ["www.example.org", "e1.cdn.example.net"]
        );
        assert!(names(&c, "198.51.100.8", S).is_empty());
    }

    #[test]
    fn min_ttl_and_failures() {
        let mut c = DnsNameCache::new(100, 60);
        c.observe(
            &response(
                "a.example.",
                0,
                vec![answer("a.example.", "A", 0, "192.0.2.9")],
            ),
            0,
        );
        assert_eq!(names(&c, "192.0.2.9", 59 * S), ["a.example"]);
        assert!(names(&c, "192.0.2.9", 61 * S).is_empty());
        // NXDOMAIN names nothing.
        c.observe(
            &response(
                "b.example.",
                3,
                vec![answer("b.example.", "A", 60, "192.0.2.10")],
            ),
            0,
        );
        assert!(names(&c, "192.0.2.10", 0).is_empty());
    }

    #[test]
    fn bounded_with_the_closest_to_expiry_going_first() {
        let mut c = DnsNameCache::new(16, 0);
        for i in 0..40u32 {
            let name = format!("n{i}.example.");
            c.observe(
                &response(
                    &name,
                    0,
                    vec![answer(&name, "A", 100 + i, &format!("192.0.2.{i}"))],
                ),
                0,
            );
            assert!(c.len() <= 16, "{}", c.len());
        }
        assert!(c.evicted() > 0);
        // The longest-lived answers stay.
        assert_eq!(names(&c, "192.0.2.39", S), ["n39.example"]);
        assert!(names(&c, "192.0.2.0", S).is_empty());
        // Answering again refreshes, without a second entry.
        let before = c.len();
        c.observe(
            &response(
                "n39.example.",
                0,
                vec![answer("n39.example.", "A", 100, "192.0.2.39")],
            ),
            0,
        );
        assert_eq!(c.len(), before);
    }
}
