//! Pairing DNS responses with their queries on one conversation (a UDP 5-tuple or a TCP
//! connection).
//!
//! A response answers the outstanding query with the same ID and the same question: RFC 5452
//! §9.1 (resolvers match ID, question and addresses), RFC 7766 §7 (over TCP, answers to
//! pipelined queries may come in any order, so pairing is by ID, never by position). A zone
//! transfer's answer spans several messages with the query's ID (RFC 5936 §2.2), so its query
//! stays open after the first. Bounded: at most `max_pending` queries per conversation.

use std::collections::VecDeque;

use super::message::DnsMessage;
use crate::counters::Counters;

/// QTYPEs answered by a run of messages: IXFR (RFC 1995 §4), AXFR (RFC 5936 §2.2).
const ZONE_TRANSFER_TYPES: [u16; 2] = [251, 252];

/// A query waiting for its answer.
#[derive(Debug, Clone)]
struct Pending {
    id: u16,
    /// First question (name, QTYPE), when the query had one.
    question: Option<(String, u16)>,
    /// Capture time of the query.
    at_ns: u64,
    /// A zone transfer that has had at least one answer message.
    answered: bool,
}

/// The outstanding queries of one conversation, oldest first.
#[derive(Debug, Default)]
pub struct Transactions {
    pending: VecDeque<Pending>,
}

/// Whether a response's question is the query's. Names compare without case: resolvers may
/// randomise it and servers echo it (draft-vixie-dnsext-dns0x20; RFC 4343 §3).
fn same_question(query: &Option<(String, u16)>, msg: &DnsMessage) -> bool {
    match (query, msg.questions.first()) {
        (Some((name, qtype)), Some(q)) => *qtype == q.qtype && name.eq_ignore_ascii_case(&q.name),
        // A response without a question (some errors, zone-transfer continuations) or a query
        // without one (RFC 7873 cookie-only queries): the ID is all there is.
        _ => true,
    }
}

impl Transactions {
    /// Queries waiting.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True when no query waits.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Records a query seen at `at_ns`. A resend of a pending query (same ID and question, a
    /// UDP client retrying) keeps the first, as the answer may be to either; a new question
    /// under a pending ID replaces the old query, which is then unanswered. At `max_pending`
    /// the oldest query is dropped.
    pub fn on_query(
        &mut self,
        msg: &DnsMessage,
        at_ns: u64,
        max_pending: usize,
        counters: &mut Counters,
    ) {
        let question = msg.questions.first().map(|q| (q.name.clone(), q.qtype));
        if let Some(i) = self.pending.iter().position(|p| p.id == msg.id) {
            if !self.pending[i].answered && same_question(&self.pending[i].question, msg) {
                counters.dns_retransmitted_queries += 1;
                return;
            }
            let old = self.pending.remove(i).expect("index from position");
            if !old.answered {
                counters.dns_unanswered += 1;
            }
        }
        if self.pending.len() >= max_pending.max(1) {
            counters.dns_pending_overflow += 1;
            self.pending.pop_front();
        }
        self.pending.push_back(Pending {
            id: msg.id,
            question,
            at_ns,
            answered: false,
        });
    }

    /// Pairs a response seen at `at_ns` with its query; returns the latency, or `None` when
    /// the query was not seen (the response is then reported on its own).
    pub fn on_response(
        &mut self,
        msg: &DnsMessage,
        at_ns: u64,
        counters: &mut Counters,
    ) -> Option<u64> {
        let Some(i) = self.pending.iter().position(|p| p.id == msg.id) else {
            counters.dns_unmatched_responses += 1;
            return None;
        };
        let p = &mut self.pending[i];
        if !same_question(&p.question, msg) {
            counters.dns_question_mismatches += 1;
            counters.dns_unmatched_responses += 1;
            return None;
        }
        let latency = at_ns.saturating_sub(p.at_ns);
        let transfer = p
            .question
            .as_ref()
            .is_some_and(|(_, t)| ZONE_TRANSFER_TYPES.contains(t));
        if transfer {
            p.answered = true;
        } else {
            self.pending.remove(i);
        }
        Some(latency)
    }

    /// Forgets queries older than `timeout_ns` at `now_ns`, counting the unanswered ones;
    /// returns how many were unanswered.
    pub fn expire(&mut self, now_ns: u64, timeout_ns: u64, counters: &mut Counters) -> u64 {
        let mut unanswered = 0;
        self.pending.retain(|p| {
            let keep = now_ns.saturating_sub(p.at_ns) < timeout_ns;
            if !keep && !p.answered {
                unanswered += 1;
            }
            keep
        });
        counters.dns_unanswered += unanswered;
        unanswered
    }

    /// The conversation is over: every query still unanswered is counted.
    pub fn finish(&mut self, counters: &mut Counters) {
        counters.dns_unanswered += self.pending.iter().filter(|p| !p.answered).count() as u64;
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::super::message::{build, parse};
    use super::*;

    fn q(id: u16, name: &str, qtype: u16) -> DnsMessage {
        parse(&build::query(id, name, qtype)).unwrap()
    }

    fn r(id: u16, name: &str) -> DnsMessage {
        parse(&build::a_response(id, name, 0, &[[192, 0, 2, 1]], 60)).unwrap()
    }

    #[test]
    fn pairs_by_id_not_by_order() {
        // RFC 7766 §7: answers to pipelined queries may come in any order.
        let mut t = Transactions::default();
        let mut c = Counters::default();
        t.on_query(&q(1, "a.test.", 1), 100, 64, &mut c);
        t.on_query(&q(2, "b.test.", 1), 200, 64, &mut c);
        t.on_query(&q(3, "c.test.", 1), 300, 64, &mut c);
        assert_eq!(t.on_response(&r(3, "c.test."), 1000, &mut c), Some(700));
        assert_eq!(t.on_response(&r(1, "a.test."), 1100, &mut c), Some(1000));
        assert_eq!(t.on_response(&r(2, "b.test."), 1200, &mut c), Some(1000));
        assert!(t.is_empty());
        // A second answer to an answered ID has no query left.
        assert_eq!(t.on_response(&r(2, "b.test."), 1300, &mut c), None);
        assert_eq!(c.dns_unmatched_responses, 1);
    }

    #[test]
    fn question_must_match_but_not_its_case() {
        // RFC 5452 §9.1: the ID alone is not enough; 0x20 case randomisation is echoed.
        let mut t = Transactions::default();
        let mut c = Counters::default();
        t.on_query(&q(7, "WwW.Example.TEST.", 1), 0, 64, &mut c);
        assert_eq!(t.on_response(&r(7, "other.test."), 5, &mut c), None);
        assert_eq!(c.dns_question_mismatches, 1);
        assert_eq!(t.len(), 1, "the query still waits for its own answer");
        assert_eq!(
            t.on_response(&r(7, "www.example.test."), 9, &mut c),
            Some(9)
        );
    }

    #[test]
    fn resends_keep_the_first_query_and_reuse_replaces() {
        let mut t = Transactions::default();
        let mut c = Counters::default();
        t.on_query(&q(9, "a.test.", 1), 10, 64, &mut c);
        t.on_query(&q(9, "a.test.", 1), 50, 64, &mut c);
        assert_eq!(c.dns_retransmitted_queries, 1);
        assert_eq!(t.len(), 1);
        t.on_query(&q(9, "b.test.", 1), 60, 64, &mut c);
        assert_eq!(c.dns_unanswered, 1, "the replaced query went unanswered");
        assert_eq!(t.on_response(&r(9, "b.test."), 70, &mut c), Some(10));
    }

    #[test]
    fn cap_expiry_and_finish_count_unanswered() {
        let mut t = Transactions::default();
        let mut c = Counters::default();
        for id in 0..4 {
            t.on_query(&q(id, "a.test.", 1), u64::from(id), 3, &mut c);
        }
        assert_eq!((t.len(), c.dns_pending_overflow), (3, 1));
        t.expire(12, 10, &mut c);
        assert_eq!((t.len(), c.dns_unanswered), (1, 2));
        t.finish(&mut c);
        assert_eq!((t.len(), c.dns_unanswered), (0, 3));
    }

    #[test]
    fn zone_transfers_pair_every_message() {
        // RFC 5936 §2.2: an AXFR answer is a run of messages with the query's ID.
        let mut t = Transactions::default();
        let mut c = Counters::default();
        t.on_query(&q(5, "zone.test.", 252), 0, 64, &mut c);
        let msg = {
            let mut m = parse(&build::a_response(5, "zone.test.", 0, &[], 60)).unwrap();
            m.questions[0].qtype = 252;
            m
        };
        assert_eq!(t.on_response(&msg, 4, &mut c), Some(4));
        // Continuations may carry no question (RFC 5936 §2.2.1).
        let mut cont = msg.clone();
        cont.questions.clear();
        assert_eq!(t.on_response(&cont, 6, &mut c), Some(6));
        t.finish(&mut c);
        assert_eq!(c.dns_unanswered, 0);
        assert_eq!(c.dns_unmatched_responses, 0);
    }
}
