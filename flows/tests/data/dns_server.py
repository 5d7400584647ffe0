#!/usr/bin/env python3
"""Tiny authoritative DNS responder for *.test, for recording captures (RFC 1035 wire format).

example.test A    -> 198.18.0.10, 198.18.0.11 (TTL 60)
example.test AAAA -> 2001:db8::10 (TTL 120)
www.test     A    -> CNAME example.test, then its A records
anything else     -> NXDOMAIN
Answers name the question by a compression pointer (offset 12).
Usage: dns_server.py ADDR
"""
import socket
import struct
import sys


def qname_end(msg):
    i = 12
    while msg[i] != 0:
        i += 1 + msg[i]
    return i + 1


def labels(name):
    out = b""
    for part in name.rstrip(".").split("."):
        out += bytes([len(part)]) + part.encode()
    return out + b"\0"


def answer(query):
    qid, flags = struct.unpack("!HH", query[:4])
    end = qname_end(query)
    qtype = struct.unpack("!H", query[end:end + 2])[0]
    question = query[12:end + 4]
    name = []
    i = 12
    while query[i] != 0:
        name.append(query[i + 1:i + 1 + query[i]].decode())
        i += 1 + query[i]
    name = ".".join(name).lower()
    rrs = []
    rcode = 0
    if name == "example.test" and qtype == 1:
        for ip in ("198.18.0.10", "198.18.0.11"):
            rrs.append(b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(ip))
    elif name == "example.test" and qtype == 28:
        rrs.append(b"\xc0\x0c" + struct.pack("!HHIH", 28, 1, 120, 16) + socket.inet_pton(socket.AF_INET6, "2001:db8::10"))
    elif name == "www.test" and qtype == 1:
        target = labels("example.test")
        rrs.append(b"\xc0\x0c" + struct.pack("!HHIH", 5, 1, 300, len(target)) + target)
        target_off = 12 + len(question) + 12  # where the CNAME rdata starts
        for ip in ("198.18.0.10", "198.18.0.11"):
            rrs.append(struct.pack("!H", 0xC000 | target_off) + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(ip))
    else:
        rcode = 3
    rflags = 0x8000 | (flags & 0x0100) | 0x0400 | rcode
    header = struct.pack("!HHHHHH", qid, rflags, 1, len(rrs), 0, 0)
    return header + question + b"".join(rrs)


def main():
    addr = sys.argv[1]
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((addr, 53))
    while True:
        data, peer = s.recvfrom(4096)
        try:
            s.sendto(answer(data), peer)
        except (IndexError, struct.error):
            pass


if __name__ == "__main__":
    main()
