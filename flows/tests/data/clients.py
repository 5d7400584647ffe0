#!/usr/bin/env python3
"""Raw-socket HTTP clients for cases curl does not do.

clients.py pipeline ADDR PORT   three GETs written in one send (pipelining), read to EOF
clients.py upgrade ADDR PORT    GET with Upgrade, read the 101, send bytes, read the echo
"""
import socket
import sys


def connect(addr, port):
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.connect((addr, port))
    return s


def read_all(s):
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return out
        out += chunk


def main():
    mode, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    host = f"[{addr}]" if ":" in addr else addr
    s = connect(addr, port)
    if mode == "pipeline":
        reqs = b"".join(
            f"GET {p} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: pipeline/1\r\n{extra}\r\n".encode()
            for p, extra in (("/a", ""), ("/b", ""), ("/nope", "Connection: close\r\n"))
        )
        s.sendall(reqs)
        read_all(s)
    elif mode == "upgrade":
        s.sendall(f"GET /upgrade HTTP/1.1\r\nHost: {host}\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        s.sendall(b"GET /not-http-anymore HTTP/1.1\r\n\r\n")
        read_all(s)
    s.close()


if __name__ == "__main__":
    main()
