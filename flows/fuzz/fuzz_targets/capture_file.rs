//! Any bytes as a capture file: the pcap/pcapng parser returns frames or an error, never
//! panics, never asks for more than `MAX_BLOCK_BYTES`, and every frame it returns lies inside
//! the input; fed in two chunks it yields the same frames as from the whole input.
#![no_main]
use flows::capture_file::{CaptureParser, Step, MAX_BLOCK_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let whole: Vec<_> = CaptureParser::frames(data)
        .map_while(Result::ok)
        .map(|f| (f.link, f.ts_ns, f.interface, f.data.to_vec()))
        .collect();
    // Streamed: the first half, then everything, as `replay` refills its buffer.
    let mut parser = CaptureParser::new();
    let (mut start, mut avail, mut got) = (0, data.len() / 2, Vec::new());
    loop {
        match parser.parse(&data[start..avail]) {
            Err(_) => break,
            Ok(Step::Read { consumed, frame }) => {
                assert!(consumed > 0 && start + consumed <= avail);
                start += consumed;
                if let Some(f) = frame {
                    got.push((f.link, f.ts_ns, f.interface, f.data.to_vec()));
                }
            }
            Ok(Step::NeedBytes(n)) => {
                assert!(n <= MAX_BLOCK_BYTES + 64 && n > avail - start);
                if avail == data.len() {
                    break;
                }
                avail = data.len();
            }
        }
    }
    assert_eq!(got, whole);
});
