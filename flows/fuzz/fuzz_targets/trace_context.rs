//! Arbitrary header values through the W3C Trace Context parsers; valid parses round-trip.
#![no_main]
use flows::trace::{TraceParent, TraceState};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(tp) = TraceParent::parse(s) {
        if tp.version == 0 {
            assert_eq!(TraceParent::parse(&tp.to_string()), Ok(tp));
        }
    }
    let ts = TraceState::parse(s);
    assert!(ts.members.len() <= 32);
    assert_eq!(TraceState::parse(&ts.to_string()).members, ts.members);
});
