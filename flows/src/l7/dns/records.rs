//! DNS messages as Hubble-style flows: `l7.dns` with Hubble's fields (`query` is the first
//! question's name, `qtypes` every question's type, `rcode`, `ips`, `cnames`, `ttl`,
//! `rrtypes`), plus what Hubble has no field for: every question, the TC bit, the answer
//! records, and whether a response's query was ever seen.

use super::message::{type_name, DnsMessage, RData};
use super::{DnsEvent, DnsTransport};
use crate::key::Endpoint;
use crate::l7::StreamDir;
use crate::packet::TcpFlags;
use crate::record::{
    DnsAnswer, DnsInfo, DnsQuestion, Flow, FlowType, IpInfo, L7Record, Layer4, Layer7, Verdict,
};

/// The record fields of `msg`; `response_only` is left for pairing to set.
pub fn info(msg: &DnsMessage) -> DnsInfo {
    let mut info = DnsInfo {
        id: msg.id,
        query: msg
            .questions
            .first()
            .map(|q| q.name.clone())
            .unwrap_or_default(),
        qtypes: msg.questions.iter().map(|q| type_name(q.qtype)).collect(),
        rcode: msg.is_response.then_some(u16::from(msg.rcode)),
        ips: Vec::new(),
        ttl: None,
        cnames: Vec::new(),
        rrtypes: Vec::new(),
        answers: Vec::with_capacity(msg.answers.len()),
        truncated: msg.truncated,
        questions: msg
            .questions
            .iter()
            .map(|q| DnsQuestion {
                name: q.name.clone(),
                qtype: type_name(q.qtype),
            })
            .collect(),
        response_only: false,
        doh: false,
    };
    for a in &msg.answers {
        let data = match &a.data {
            RData::Addr(ip) => {
                info.ips.push(*ip);
                ip.to_string()
            }
            RData::Name(n) => {
                if a.rtype == 5 {
                    info.cnames.push(n.clone());
                }
                n.clone()
            }
            RData::Other => String::new(),
        };
        let rrtype = type_name(a.rtype);
        if !info.rrtypes.contains(&rrtype) {
            info.rrtypes.push(rrtype.clone());
        }
        info.ttl = Some(info.ttl.map_or(a.ttl, |t| t.min(a.ttl)));
        info.answers.push(DnsAnswer {
            name: a.name.clone(),
            rrtype,
            ttl: a.ttl,
            data,
        });
    }
    info
}

/// The L7 flow of `ev` on the conversation between `client` and `server`.
pub fn flow(ev: DnsEvent, client: Endpoint, server: Endpoint, socket_cookie: Option<u64>) -> Flow {
    let (src, dst) = match ev.dir {
        StreamDir::ToServer => (client, server),
        StreamDir::ToClient => (server, client),
    };
    let l4 = match ev.transport {
        DnsTransport::Udp => Layer4::Udp {
            source_port: src.port,
            destination_port: dst.port,
        },
        DnsTransport::Tcp | DnsTransport::Https => Layer4::Tcp {
            source_port: src.port,
            destination_port: dst.port,
            flags: TcpFlags::default(),
        },
    };
    let mut info = ev.info;
    info.doh = ev.transport == DnsTransport::Https;
    Flow {
        time_ns: ev.at.ts_ns,
        verdict: Verdict::Forwarded,
        flow_type: FlowType::L7,
        ip: IpInfo::new(src.addr, dst.addr),
        l4,
        l7: Some(Layer7 {
            r#type: ev.kind,
            latency_ns: ev.latency_ns,
            record: L7Record::Dns(info),
        }),
        traffic_direction: ev.at.meta.direction,
        is_reply: Some(ev.dir == StreamDir::ToClient),
        ifindex: ev.at.meta.ifindex,
        socket_cookie: ev.at.meta.socket_cookie.or(socket_cookie),
        ip_len: 0,
        payload_bytes: ev.message_bytes,
        trace_context: None,
        process: None,
        peer_process: None,
        tcp_health: None,
        tcp_srtt_ns: None,
        l7_source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::message::{build, parse};
    use super::*;
    use crate::l7::PacketCtx;
    use crate::record::L7Type;

    #[test]
    fn every_question_and_the_tc_bit() {
        // QDCOUNT 3 (RFC 1035 §4.1.2 allows it; Hubble's `query` holds only the first).
        let mut m = build::query(1, "x.example.", 1);
        m[5] = 3;
        m.extend(build::name("y.example."));
        m.extend([0, 28, 0, 1]);
        m.extend(build::name("z.example."));
        m.extend([0, 1, 0, 1]);
        let i = info(&parse(&m).unwrap());
        assert_eq!(i.query, "x.example.");
        assert_eq!(i.qtypes, ["A", "AAAA", "A"]);
        let names: Vec<_> = i.questions.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(names, ["x.example.", "y.example.", "z.example."]);
        assert_eq!(i.rcode, None, "queries have no rcode");
        assert!(!i.truncated);

        let mut r = build::a_response(2, "big.test.", 0, &[[192, 0, 2, 1]], 30);
        r[2] |= 0x02; // TC
        let i = info(&parse(&r).unwrap());
        assert!(i.truncated);
        assert_eq!((i.rcode, i.ttl), (Some(0), Some(30)));
    }

    #[test]
    fn nodata_and_nxdomain_differ_by_rcode() {
        // RFC 2308 §2.1 (NXDOMAIN: rcode 3) vs §2.2 (NODATA: NOERROR, no answer).
        let nodata = info(&parse(&build::a_response(1, "a.test.", 0, &[], 60)).unwrap());
        let nx = info(&parse(&build::a_response(1, "a.test.", 3, &[], 60)).unwrap());
        assert_eq!((nodata.rcode, nodata.ips.len()), (Some(0), 0));
        assert_eq!(nx.rcode, Some(3));
    }

    #[test]
    fn flows_take_addresses_from_the_direction() {
        let client = Endpoint {
            addr: "198.18.0.10".parse().unwrap(),
            port: 40000,
        };
        let server = Endpoint {
            addr: "198.18.0.53".parse().unwrap(),
            port: 53,
        };
        let ev = DnsEvent {
            dir: StreamDir::ToClient,
            transport: DnsTransport::Tcp,
            at: PacketCtx {
                ts_ns: 5,
                ..Default::default()
            },
            kind: L7Type::Response,
            latency_ns: None,
            info: info(&parse(&build::a_response(1, "a.test.", 0, &[], 60)).unwrap()),
            message_bytes: 27,
        };
        let f = flow(ev, client, server, Some(9));
        assert_eq!(f.ip.source, server.addr);
        assert_eq!(f.is_reply, Some(true));
        assert_eq!(f.socket_cookie, Some(9));
        assert_eq!(f.payload_bytes, 27);
        assert!(matches!(
            f.l4,
            Layer4::Tcp {
                source_port: 53,
                destination_port: 40000,
                ..
            }
        ));
    }
}
