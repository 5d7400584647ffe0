//! Writes a synthetic HTTP/1.1 capture for A/B timing (see `bench/tshark_ratio.sh`).
//!
//! Usage: gen-pcap OUT.pcap [CONNECTIONS] [EXCHANGES_PER_CONNECTION] [BODY_BYTES]

use std::fs::File;
use std::io::BufWriter;
use std::time::Duration;

use anyhow::{Context, Result};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::DataLink;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let out = args
        .get(1)
        .context("usage: gen-pcap OUT.pcap [CONNECTIONS] [EXCHANGES] [BODY_BYTES]")?;
    let num = |i: usize, default: usize| -> Result<usize> {
        args.get(i).map_or(Ok(default), |s| {
            s.parse()
                .with_context(|| format!("argument {i} ({s:?}) is not a number"))
        })
    };
    let connections = num(2, 1000)? as u16;
    let exchanges = num(3, 50)?;
    let body = num(4, 512)?;
    let frames = flowscope_bench::http_workload(connections, exchanges, body);
    let file = File::create(out).with_context(|| format!("cannot create {out}"))?;
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        ..PcapHeader::default()
    };
    let mut w = PcapWriter::with_header(BufWriter::new(file), header)
        .context("cannot write pcap header")?;
    for f in &frames {
        let pkt = PcapPacket::new(Duration::from_nanos(f.ts_ns), f.data.len() as u32, &f.data);
        w.write_packet(&pkt).context("cannot write packet")?;
    }
    eprintln!(
        "wrote {out}: {} packets, {} HTTP exchanges",
        frames.len(),
        flowscope_bench::exchange_count(connections, exchanges)
    );
    Ok(())
}
