#!/usr/bin/env python3
"""HTTP/1.1 server for the odd cases nginx does not produce on demand.

GET  /chunked      200, chunked body with a chunk extension and a trailer
GET  /nocontent    204
GET  /notmodified  304 with ETag
POST /upload       100 Continue (when asked), then 201
GET  /close        200 without Content-Length, body delimited by closing the connection
GET  /upgrade      101 Switching Protocols, then echoes raw bytes once
Usage: odd_server.py ADDR PORT
"""
import socket
import sys
import threading


def read_head(conn, buf):
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            return None, buf
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head.decode("latin-1"), rest


def handle(conn):
    buf = b""
    try:
        while True:
            head, buf = read_head(conn, buf)
            if head is None:
                return
            lines = head.split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            if headers.get("expect", "").lower() == "100-continue":
                conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            length = int(headers.get("content-length", "0"))
            while len(buf) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            buf = buf[length:]
            if path == "/chunked":
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
                    b"Trailer: X-Checksum\r\n\r\n"
                    b"5;note=first\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: 42\r\n\r\n"
                )
            elif path == "/nocontent":
                conn.sendall(b"HTTP/1.1 204 No Content\r\nServer: odd\r\n\r\n")
            elif path == "/notmodified":
                conn.sendall(b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\n\r\n')
            elif path == "/upload":
                conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 7\r\n\r\ncreated")
            elif path == "/close":
                conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n")
                conn.sendall(b"this body ends when the connection closes\n")
                return
            elif path == "/upgrade":
                conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
                data = buf or conn.recv(65536)
                conn.sendall(data)
                return
            else:
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    finally:
        conn.close()


def main():
    addr, port = sys.argv[1], int(sys.argv[2])
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, port))
    srv.listen(16)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
