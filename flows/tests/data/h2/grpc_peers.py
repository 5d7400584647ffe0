#!/usr/bin/env python3
"""gRPC server and client for the golden capture (record.sh). Raw bytes, no protobuf stubs.

  grpc_peers.py server ADDR:PORT     serves pkg.Greeter until killed
  grpc_peers.py client ADDR:PORT     makes the calls below on one channel, then exits

Calls, in order (one HTTP/2 connection, streams 1, 3, 5, ...):
  1. /pkg.Greeter/SayHello      unary, OK, traceparent + grpc-timeout 5S, 5-byte request
  2. /pkg.Greeter/Fail          unary, NOT_FOUND "no such thing" (trailers-only)
  3. /pkg.Greeter/Stream        server streaming, three 4-byte responses, OK
  4. /pkg.Greeter/Missing       unknown method -> UNIMPLEMENTED from the server
  5. /pkg.Greeter/SayHello      unary, OK, per-call gzip requested (grpcio sent it
                                uncompressed: Compressed-Flag 0 in the capture)
"""
import sys
import time
from concurrent import futures

import grpc

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def say_hello(request, context):
    return b"hello, " + request


def fail(request, context):
    context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")


def stream(request, context):
    for i in range(3):
        yield b"msg%d" % i


def server(addr):
    s = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handlers = {
        "SayHello": grpc.unary_unary_rpc_method_handler(say_hello),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
    }
    s.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("pkg.Greeter", handlers),))
    s.add_insecure_port(addr)
    s.start()
    s.wait_for_termination()


def client(addr):
    with grpc.insecure_channel(addr) as ch:
        grpc.channel_ready_future(ch).result(timeout=5)
        md = (("traceparent", TRACEPARENT),)
        ch.unary_unary("/pkg.Greeter/SayHello")(b"world", metadata=md, timeout=5)
        time.sleep(0.05)
        try:
            ch.unary_unary("/pkg.Greeter/Fail")(b"x", metadata=md)
        except grpc.RpcError:
            pass
        time.sleep(0.05)
        list(ch.unary_stream("/pkg.Greeter/Stream")(b"go", metadata=md))
        time.sleep(0.05)
        try:
            ch.unary_unary("/pkg.Greeter/Missing")(b"?", metadata=md)
        except grpc.RpcError:
            pass
        time.sleep(0.05)
        ch.unary_unary("/pkg.Greeter/SayHello")(
            b"zipped world", metadata=md, compression=grpc.Compression.Gzip
        )


if __name__ == "__main__":
    {"server": server, "client": client}[sys.argv[1]](sys.argv[2])
