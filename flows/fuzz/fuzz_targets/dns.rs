//! Arbitrary datagrams through the DNS parser: no panics, no hangs on pointer loops.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = flows::l7::dns::parse(data) {
        assert!(m.answers.len() <= 64);
        for q in &m.questions {
            assert!(q.name.len() <= 4 * 255);
        }
    }
});
