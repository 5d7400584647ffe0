//! Arbitrary header values through the W3C Trace Context parsers; valid parses round-trip.
//! Lines of the input are also judged as the `traceparent` fields of one request.
#![no_main]
use flows::trace::{InboundTraceParent, InvalidTraceParent, TraceParent, TraceState};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let fields: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    let inbound = InboundTraceParent::from_fields(&fields);
    match inbound {
        InboundTraceParent::Valid(tp) => {
            assert_eq!(fields.len(), 1);
            assert!(!tp.trace_id.is_zero() && !tp.parent_id.is_zero());
        }
        InboundTraceParent::Invalid(InvalidTraceParent::Duplicated) => assert!(fields.len() > 1),
        InboundTraceParent::Invalid(r) => {
            assert_eq!(InvalidTraceParent::from_name(r.as_str()), Some(r))
        }
        InboundTraceParent::Absent => unreachable!("split yields at least one field"),
    }
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
    let _ = TraceState::parse_fields(s.split('\n'));
});
