//! Any frame, any link type: `decode` returns a packet or an error, never panics, and the
//! engine ingests whatever decodes. The first byte picks the link type: every decoded one
//! (`LinkType::DECODED`: NULL/LOOP/NFLOG, PPP/HDLC, pflog, ipnet, PKTAP, 802.11/radiotap/PPI
//! among them), or an unsupported number. The second byte's low bit turns on tunnel
//! decapsulation (GRE, ERSPAN, IP-in-IP, VXLAN, Geneve: what `replay` does), so the inner
//! frames of any outer packet are decoded too.
#![no_main]
use flows::engine::{Engine, EngineConfig};
use flows::packet::{decode, CaptureMeta, LinkType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [sel, flags, frame @ ..] = data else {
        return;
    };
    let (sel, decapsulate_tunnels) = (*sel, flags & 1 == 1);
    let link = LinkType::DECODED
        .get(usize::from(sel) % (LinkType::DECODED.len() + 1))
        .copied()
        .unwrap_or(LinkType::Unsupported(u32::from(sel)));
    if let Ok(p) = decode(link, frame, CaptureMeta::default()) {
        assert!(p.payload.len() <= frame.len());
        assert!(p.payload_wire_len as usize >= p.payload.len());
    }
    let mut e = Engine::new(EngineConfig {
        decapsulate_tunnels,
        ..EngineConfig::default()
    });
    let _ = e.handle_frame(1, link, frame, CaptureMeta::default());
    e.flush(2);
    while e.poll_record().is_some() {}
});
