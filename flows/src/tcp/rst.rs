//! RST segments judged as the receiver would judge them, from the wire (RFC 9293 §3.10.7.4,
//! RFC 5961 §3.2).
//!
//! An observer cannot know the receiver's exact state, but it knows where each direction's
//! sequence space stands (from reassembly, [`SendPosition`]) and the window and ACK the
//! receiver last advertised (from its own segments, [`ReceiverState`]). With them a RST is:
//! - **outside the receiver's window**: the receiver drops it ("If the RST bit is set ... if
//!   not acceptable, drop the segment"); the connection goes on, and so does decoding;
//! - **in the window, not at the next expected sequence number**: the receiver answers with a
//!   challenge ACK and keeps the connection (RFC 5961 §3.2);
//! - **at the next expected sequence number**: the receiver resets. Yet the capture point may
//!   sit in front of a filter that dropped it, or a third party may have forged it with the
//!   right numbers. So the reset stays pending until something decides it: a later segment of
//!   its alleged sender in the same sequence space proves that sender's connection lives on (a
//!   real RST leaves its sender no connection to continue), and a segment far outside either
//!   direction's sequence space is a new connection on the same 4-tuple, picked up mid-way.
//!   Nothing deciding it within the engine's close linger, the reset takes effect, as of its
//!   own time.
//!
//! The observer is lenient where it cannot be exact: "the next expected sequence number" is any
//! of the positions it knows (the next byte to deliver, the highest byte seen, the sender's FIN
//! — Linux accepts a RST at RCV.NXT-1 after a FIN, `tcp_reset_check` — and the receiver's last
//! ACK, which is ahead of the capture when the capture lost bytes), and the window spans from
//! the lowest of them to the highest plus the receiver's window. Accepting a reset the peers
//! ignored costs nothing, as the pending reset is withdrawn when they carry on.

use crate::key::Side;
use crate::packet::{TcpFlags, TcpInfo};
use crate::tcp::reassembler::SendPosition;
use crate::tcp::seq::seq_diff;

/// Largest window a peer can advertise, 65535 << 14 (RFC 7323 §2.3), about 2^30. Assumed when
/// the receiver has not been seen yet.
pub const MAX_WINDOW: u32 = 65_535 << 14;

/// Largest shift a window scale option may ask for (RFC 7323 §2.3); also the shift assumed
/// when the connection was joined after its SYNs and the real one is unknown.
pub const MAX_WINDOW_SHIFT: u8 = 14;

/// How far from its sender's expected sequence number a segment after a pending reset may
/// be and still continue the connection: the receiver's window, but at most this. Legitimate
/// segments are within a window of it (ahead: the sender may not pass the window; behind:
/// retransmissions of unacknowledged data); the cap keeps a new connection's random ISN
/// (RFC 9293 §3.4.1) from landing inside by chance (2^21 / 2^32, 0.05%).
pub const CONTINUATION_SLACK: u32 = 1 << 20;

/// What one side announced about its receiving, from its own segments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiverState {
    /// Its SYN was seen.
    syn_seen: bool,
    /// The window scale shift its SYN offered (RFC 7323 §2.2).
    wscale: Option<u8>,
    /// Last window field it sent, and whether that came in a SYN (never scaled, RFC 7323 §2.2).
    window: Option<(u16, bool)>,
    /// Last acknowledgment number it sent: its RCV.NXT at the time.
    ack: Option<u32>,
}

impl ReceiverState {
    /// Takes what a segment of this side says about its receiving. Not for RST segments: their
    /// window and ACK are not the receiver's (RFC 9293 §3.5.2) and may be forged.
    pub fn on_segment(&mut self, tcp: &TcpInfo) {
        let syn = tcp.flags.contains(TcpFlags::SYN);
        if syn {
            self.syn_seen = true;
            self.wscale = tcp.window_scale;
        }
        self.window = Some((tcp.window, syn));
        if tcp.flags.contains(TcpFlags::ACK) {
            self.ack = Some(tcp.ack);
        }
    }
}

/// A reset at the next expected sequence number, not yet in effect (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingReset {
    /// Who sent the RST, by its addresses.
    pub sender: Side,
    /// Its sequence number: the sender's SND.NXT, if the sender is real.
    pub seq: u32,
    /// Its acknowledgment number, when ACK was set: the sender's RCV.NXT.
    pub ack: Option<u32>,
    /// When it was seen; the reset takes effect as of this time.
    pub at_ns: u64,
}

/// What the receiver does with a RST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RstVerdict {
    /// Outside the window (or, answering a SYN, acknowledging something never sent): dropped.
    OutOfWindow,
    /// In the window, not at the next expected sequence number: challenge ACK, no reset.
    Challenge,
    /// At the next expected sequence number, or not checkable: the connection resets.
    Reset,
}

/// What a segment after a pending reset says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterReset {
    /// The RST's sender went on in its sequence space: the reset did not happen.
    Continued,
    /// Outside the direction's sequence space: a new connection on the same 4-tuple.
    NewConnection,
    /// Nothing decided (the receiver's in-flight segments, or nothing to compare with).
    Undecided,
}

/// Per-connection RST bookkeeping: what each side advertised and the pending reset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResetTracker {
    /// Per sending side, indexed by [`Side::index`].
    sides: [ReceiverState; 2],
    pending: Option<PendingReset>,
}

impl ResetTracker {
    /// Takes a non-RST segment sent by `side`.
    pub fn on_segment(&mut self, side: Side, tcp: &TcpInfo) {
        self.sides[side.index()].on_segment(tcp);
    }

    /// The reset waiting to take effect, if any.
    pub fn pending(&self) -> Option<&PendingReset> {
        self.pending.as_ref()
    }

    /// Makes a RST judged [`RstVerdict::Reset`] pending.
    pub fn begin_reset(&mut self, sender: Side, tcp: &TcpInfo, at_ns: u64) {
        self.pending = Some(PendingReset {
            sender,
            seq: tcp.seq,
            ack: tcp.flags.contains(TcpFlags::ACK).then_some(tcp.ack),
            at_ns,
        });
    }

    /// Withdraws the pending reset (the peers carried on).
    pub fn withdraw(&mut self) {
        self.pending = None;
    }

    /// Bytes `receiver` accepts past its RCV.NXT: its last window field, scaled by its shift
    /// when both SYNs offered one (RFC 7323 §2.2; at most 14, §2.3). Joined after the SYNs, the
    /// shift is unknown and assumed 14; with nothing from the receiver yet, [`MAX_WINDOW`].
    pub fn window_of(&self, receiver: Side) -> u32 {
        let r = &self.sides[receiver.index()];
        let peer = &self.sides[receiver.other().index()];
        let Some((raw, in_syn)) = r.window else {
            return MAX_WINDOW;
        };
        if in_syn {
            return u32::from(raw);
        }
        let shift = match (r.syn_seen && peer.syn_seen, r.wscale, peer.wscale) {
            (true, Some(s), Some(_)) => s.min(MAX_WINDOW_SHIFT),
            (true, _, _) => 0,
            (false, _, _) => MAX_WINDOW_SHIFT,
        };
        u32::from(raw) << shift
    }

    /// Judges a RST sent by `sender`, given both directions' sequence positions.
    pub fn judge_rst(
        &self,
        sender: Side,
        tcp: &TcpInfo,
        sender_pos: Option<SendPosition>,
        receiver_pos: Option<SendPosition>,
    ) -> RstVerdict {
        let receiver = &self.sides[sender.other().index()];
        let Some(pos) = sender_pos else {
            // The sender never spoke before: its RST answers the receiver's SYN (SYN-SENT,
            // RFC 9293 §3.10.7.3), acceptable when its ACK acknowledges nothing never sent
            // (SEG.ACK =< SND.NXT). Without an ACK there is nothing to check.
            return match (tcp.flags.contains(TcpFlags::ACK), receiver_pos) {
                (true, Some(r)) => {
                    let d = i64::from(seq_diff(tcp.ack, r.highest));
                    if d <= 0 && d > -i64::from(MAX_WINDOW) {
                        RstVerdict::Reset
                    } else {
                        RstVerdict::OutOfWindow
                    }
                }
                _ => RstVerdict::Reset,
            };
        };
        let expected = [Some(pos.next), Some(pos.highest), pos.fin, receiver.ack];
        let expected = expected.iter().flatten();
        if expected.clone().any(|e| *e == tcp.seq) {
            return RstVerdict::Reset;
        }
        // RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND, over the span of what RCV.NXT may be. A zero
        // window accepts only the exact number (§3.10.7.4), handled above.
        let at = |s: u32| i64::from(seq_diff(s, pos.next));
        let lo = expected.clone().map(|e| at(*e)).min().unwrap_or(0);
        let hi = expected.map(|e| at(*e)).max().unwrap_or(0);
        let d = at(tcp.seq);
        let wnd = i64::from(self.window_of(sender.other()));
        if d >= lo && d < hi + wnd {
            RstVerdict::Challenge
        } else {
            RstVerdict::OutOfWindow
        }
    }

    /// Judges a non-RST segment from `side` (whose sequence position is `pos`) against the
    /// pending reset.
    pub fn judge_after_reset(
        &self,
        side: Side,
        tcp: &TcpInfo,
        pos: Option<SendPosition>,
    ) -> AfterReset {
        let Some(p) = self.pending else {
            return AfterReset::Undecided;
        };
        // The RST's sequence number is its sender's SND.NXT; its ACK is the other side's.
        let expected = if side == p.sender {
            Some(p.seq)
        } else {
            pos.map(|q| q.highest).or(p.ack)
        };
        let Some(expected) = expected else {
            return AfterReset::Undecided;
        };
        let slack = i64::from(self.window_of(side.other()).clamp(1, CONTINUATION_SLACK));
        let d = i64::from(seq_diff(tcp.seq, expected));
        if d < -slack || d >= slack {
            AfterReset::NewConnection
        } else if side == p.sender {
            AfterReset::Continued
        } else {
            AfterReset::Undecided
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: Side = Side::Lo;
    const SERVER: Side = Side::Hi;

    fn seg(flags: TcpFlags, seq: u32, ack: u32, window: u16, wscale: Option<u8>) -> TcpInfo {
        TcpInfo {
            src_port: 1,
            dst_port: 2,
            seq,
            ack,
            flags,
            window,
            window_scale: wscale,
            timestamps: None,
        }
    }

    fn pos(next: u32) -> Option<SendPosition> {
        Some(SendPosition {
            next,
            highest: next,
            fin: None,
        })
    }

    /// Handshake with window scale 7 both ways; client window 502 (64256 bytes).
    fn tracker() -> ResetTracker {
        let mut t = ResetTracker::default();
        let syn = TcpFlags::SYN;
        t.on_segment(CLIENT, &seg(syn, 1000, 0, 64240, Some(7)));
        t.on_segment(
            SERVER,
            &seg(syn | TcpFlags::ACK, 5000, 1001, 65160, Some(7)),
        );
        t.on_segment(CLIENT, &seg(TcpFlags::ACK, 1001, 5001, 502, None));
        t
    }

    fn rst(seq: u32) -> TcpInfo {
        seg(TcpFlags::RST, seq, 0, 0, None)
    }

    #[test]
    fn window_scale_applies_only_when_both_syns_offer_it() {
        let t = tracker();
        assert_eq!(t.window_of(CLIENT), 502 << 7);
        // RFC 7323 §2.2: the window of a SYN is never scaled.
        assert_eq!(t.window_of(SERVER), 65160);
        let mut t = ResetTracker::default();
        t.on_segment(CLIENT, &seg(TcpFlags::SYN, 1, 0, 64240, Some(7)));
        t.on_segment(
            SERVER,
            &seg(TcpFlags::SYN | TcpFlags::ACK, 1, 2, 65160, None),
        );
        t.on_segment(CLIENT, &seg(TcpFlags::ACK, 2, 2, 502, None));
        assert_eq!(t.window_of(CLIENT), 502, "the server offered no scale");
        // Joined mid-way: the shift is unknown, assume the largest; unseen: MAX_WINDOW.
        let mut t = ResetTracker::default();
        t.on_segment(CLIENT, &seg(TcpFlags::ACK, 2, 2, 502, None));
        assert_eq!(t.window_of(CLIENT), 502 << 14);
        assert_eq!(t.window_of(SERVER), MAX_WINDOW);
        // A shift above 14 counts as 14 (RFC 7323 §2.3).
        let mut t = ResetTracker::default();
        t.on_segment(CLIENT, &seg(TcpFlags::SYN, 1, 0, 1, Some(20)));
        t.on_segment(
            SERVER,
            &seg(TcpFlags::SYN | TcpFlags::ACK, 1, 2, 1, Some(1)),
        );
        t.on_segment(CLIENT, &seg(TcpFlags::ACK, 2, 2, 1, None));
        assert_eq!(t.window_of(CLIENT), 1 << 14);
    }

    /// RFC 9293 §3.10.7.4 / RFC 5961 §3.2: out of window dropped, in window challenged,
    /// exact resets.
    #[test]
    fn rst_is_judged_against_the_receivers_window() {
        let t = tracker();
        let server = pos(5001);
        let client = pos(1001);
        let judge = |seq| t.judge_rst(SERVER, &rst(seq), server, client);
        assert_eq!(judge(5001), RstVerdict::Reset);
        assert_eq!(judge(5001 + 1000), RstVerdict::Challenge);
        assert_eq!(judge(5001 + (502 << 7) - 1), RstVerdict::Challenge);
        assert_eq!(judge(5001 + (502 << 7)), RstVerdict::OutOfWindow);
        assert_eq!(judge(5001 + 0x3fff_0000), RstVerdict::OutOfWindow);
        assert_eq!(judge(5000), RstVerdict::OutOfWindow, "below RCV.NXT");
    }

    #[test]
    fn rst_next_sequence_is_any_position_the_observer_knows() {
        let t = tracker();
        // A hole: the capture delivered up to 5001, saw bytes up to 7001 and a FIN at 7001.
        let server = Some(SendPosition {
            next: 5001,
            highest: 7002,
            fin: Some(7001),
        });
        let judge = |seq| t.judge_rst(SERVER, &rst(seq), server, pos(1001));
        assert_eq!(judge(7002), RstVerdict::Reset, "SND.NXT past the FIN");
        assert_eq!(
            judge(7001),
            RstVerdict::Reset,
            "RCV.NXT-1 after a FIN (Linux)"
        );
        assert_eq!(judge(6000), RstVerdict::Challenge);
        // The receiver acknowledged bytes the capture lost.
        let mut t = tracker();
        t.on_segment(CLIENT, &seg(TcpFlags::ACK, 1001, 9001, 502, None));
        assert_eq!(
            t.judge_rst(SERVER, &rst(9001), pos(5001), pos(1001)),
            RstVerdict::Reset
        );
    }

    /// RFC 9293 §3.10.7.3: a RST answering a SYN is acceptable when it acknowledges the SYN.
    #[test]
    fn rst_from_a_silent_sender_checks_its_ack() {
        let mut t = ResetTracker::default();
        t.on_segment(CLIENT, &seg(TcpFlags::SYN, 1000, 0, 64240, Some(7)));
        let syn_sent = pos(1001);
        let rst_ack = |ack| seg(TcpFlags::RST | TcpFlags::ACK, 0, ack, 0, None);
        assert_eq!(
            t.judge_rst(SERVER, &rst_ack(1001), None, syn_sent),
            RstVerdict::Reset
        );
        assert_eq!(
            t.judge_rst(SERVER, &rst_ack(5000), None, syn_sent),
            RstVerdict::OutOfWindow
        );
        assert_eq!(t.judge_rst(SERVER, &rst(7), None, None), RstVerdict::Reset);
    }

    #[test]
    fn after_a_reset_the_sender_continuing_withdraws_it() {
        let mut t = tracker();
        t.begin_reset(CLIENT, &rst(1001), 10);
        let data = |seq| seg(TcpFlags::ACK | TcpFlags::PSH, seq, 5001, 502, None);
        // Same sequence space as the RST: the sender's connection lives on.
        assert_eq!(
            t.judge_after_reset(CLIENT, &data(1001), pos(1001)),
            AfterReset::Continued
        );
        // The receiver's segments in its own space decide nothing (in flight).
        assert_eq!(
            t.judge_after_reset(SERVER, &data(5001), pos(5001)),
            AfterReset::Undecided
        );
        // Far away in either direction: a new connection on the same 4-tuple.
        assert_eq!(
            t.judge_after_reset(CLIENT, &data(0x8000_0000), pos(1001)),
            AfterReset::NewConnection
        );
        assert_eq!(
            t.judge_after_reset(SERVER, &data(5001 + (1 << 21)), pos(5001)),
            AfterReset::NewConnection
        );
        // Nothing known of the receiver's space but the RST's ACK.
        let mut t = ResetTracker::default();
        t.begin_reset(
            CLIENT,
            &seg(TcpFlags::RST | TcpFlags::ACK, 1, 77, 0, None),
            0,
        );
        assert_eq!(
            t.judge_after_reset(SERVER, &data(77), None),
            AfterReset::Undecided
        );
        assert_eq!(
            t.judge_after_reset(SERVER, &data(77 + (1 << 30)), None),
            AfterReset::NewConnection
        );
        t.withdraw();
        assert_eq!(t.pending(), None);
    }
}
