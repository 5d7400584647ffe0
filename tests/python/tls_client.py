#!/usr/bin/env python3
"""A Hubble client over TLS, for tests/tests/tls.rs: what Hubble Relay and `hubble --tls` do.

It reuses hubble_client.py's stubs (generated from observer/proto at every run) and dials with
grpc.ssl_channel_credentials (the CA that signed the server, and with --cert/--key a client
certificate for mTLS), checking the server's certificate against --server-name, the
`<node>.<cluster>.hubble-grpc.cilium.io` name Relay checks. With --plaintext it dials without
TLS, to see that refused.

  call --server HOST:PORT --ca CA.pem --server-name NAME [--cert C --key K] [--plaintext]

prints one JSON line per call: health, ServerStatus, the first peer.Peer/Notify notification
and GetFlows (how many flows), each {"call": ..., ...} or {"call": ..., "error": CODE, ...}.
"""

import argparse
import os
import signal
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubble_client as hc  # noqa: E402  (exits 2 when grpc is missing)

import grpc  # noqa: E402


def read(path):
    with open(path, "rb") as f:
        return f.read()


def channel(args):
    if args.plaintext:
        return grpc.insecure_channel(args.server)
    creds = grpc.ssl_channel_credentials(
        root_certificates=read(args.ca),
        private_key=read(args.key) if args.key else None,
        certificate_chain=read(args.cert) if args.cert else None,
    )
    return grpc.secure_channel(
        args.server, creds, options=[("grpc.ssl_target_name_override", args.server_name)]
    )


def attempt(name, fn):
    try:
        out = fn()
        out["call"] = name
        hc.emit(out)
    except grpc.RpcError as e:
        hc.emit({"call": name, "error": e.code().name, "details": e.details()})


def cmd_call(args):
    ch = channel(args)
    t = args.timeout

    def health():
        r = hc.health_pb2_grpc.HealthStub(ch).Check(
            hc.health_pb2.HealthCheckRequest(service="observer.Observer"), timeout=t
        )
        return {"status": hc.health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)}

    def status():
        r = hc.observer_pb2_grpc.ObserverStub(ch).ServerStatus(
            hc.observer_pb2.ServerStatusRequest(), timeout=t
        )
        return {"num_flows": r.num_flows, "version": r.version}

    def peers():
        call = hc.peer_pb2_grpc.PeerStub(ch).Notify(hc.peer_pb2.NotifyRequest(), timeout=t)
        for n in call:
            call.cancel()
            return {
                "name": n.name,
                "address": n.address,
                "tls_server_name": n.tls.server_name if n.HasField("tls") else None,
            }
        return {"name": None}

    def flows():
        req = hc.observer_pb2.GetFlowsRequest(number=100)
        got = list(hc.observer_pb2_grpc.ObserverStub(ch).GetFlows(req, timeout=t))
        return {"flows": sum(1 for r in got if r.WhichOneof("response_types") == "flow")}

    for name, fn in [("health", health), ("status", status), ("peers", peers), ("flows", flows)]:
        attempt(name, fn)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--proto-dir", default=hc.DEFAULT_PROTO_DIR)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("call")
    c.add_argument("--server", required=True)
    c.add_argument("--ca")
    c.add_argument("--server-name")
    c.add_argument("--cert")
    c.add_argument("--key")
    c.add_argument("--plaintext", action="store_true")
    c.add_argument("--timeout", type=float, default=10)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="flowscope-pystubs-") as out:
        hc.generate(args.proto_dir, out)
        cmd_call(args)


if __name__ == "__main__":
    # A test that ends with this client still running stops it with SIGTERM: exit through the
    # `with` blocks, so the stubs' temporary directory is removed (the default action would not).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
