//! End-to-end TLS plaintext (issue 19): nginx serving HTTPS with Debian's OpenSSL 3, curl
//! (HTTP/1.1 and HTTP/2) and Python's urllib as clients, each in its own namespace, a CA made
//! here with the openssl CLI. The agent reads the plaintext at libssl with uprobes; the flows
//! must say exactly what was asked and answered, that their L7 came from the uprobes, and which
//! process made them. `flowscope status` must list the hooked library per process, and every
//! program must be gone once the agent exits. Also: gRPC over TLS (Debian's grpcio, memory
//! BIOs) with a traceparent, OpenSSL linked statically into a client built here, and a TLS
//! connection no probe sees (a blind spot in status).

use std::time::{Duration, Instant};

use flowscope_e2e::*;
use serde_json::Value;

/// Runs `cmd` in `ns` as one process whose pid is printed first; returns (pid, the rest).
fn run_with_pid(ns: &Netns, cmd: &str) -> (u64, String) {
    let out = ns.exec(&format!("echo $$; exec {cmd}"));
    let (pid, rest) = out.split_once('\n').unwrap_or((out.as_str(), ""));
    (pid.trim().parse().expect("pid"), rest.to_string())
}

fn observe(sock: &str, args: &str) -> Vec<Value> {
    let out = sh(&format!(
        "{} observe --server unix://{sock} {args}",
        flowscope_bin().display()
    ));
    json_lines(
        &out.lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect::<Vec<_>>(),
    )
}

fn is_client_port(f: &Value, port: u64) -> bool {
    flow::src_port(f) == port || flow::dst_port(f) == port
}

/// The L7 flows of the connection from client port `port`, waiting until there are `n`.
fn l7_of(sock: &str, port: u64, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got: Vec<Value> = observe(sock, "--last 1000 -o json --type l7")
            .into_iter()
            .filter(|f| is_client_port(f, port))
            .collect();
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// curl fetches `path` from nginx over HTTPS with HTTP/1.1 (from `ns`, trusting `ca`); its
/// exchange must be observed whole (see [`check_exchange`]).
fn curl_http11_checked(ns: &Netns, ca: &str, sock: &str, path: &str, nginx_pid: u64) {
    let (curl, out) = run_with_pid(
        ns,
        &format!(
            "curl -sS --http1.1 --cacert {ca} -o /dev/null -w \"%{{local_port}} %{{http_code}}\" https://{SERVER_V4}{path}"
        ),
    );
    let f: Vec<u64> = out.split_whitespace().map(|x| x.parse().unwrap()).collect();
    assert_eq!(f[1], 200, "curl: {out}");
    let flows = l7_of(sock, f[0], 2);
    check_exchange(&flows, path, 200, "HTTP/1.1", (curl, "curl"), nginx_pid);
}

/// Checks one exchange's two flows: method, path, status, protocol, the uprobe source, and
/// the processes. Both ends are on this node with the same libssl hooked: the plaintext of
/// whichever end wrote first feeds the decoders (the client's request, or nginx's HTTP/2
/// SETTINGS frame, which races it), so the flows are about the client process (`pid`,
/// `comm`) with nginx (`nginx_pid`) at the other end, or the other way round.
fn check_exchange(
    flows: &[Value],
    path: &str,
    code: u64,
    protocol: &str,
    (pid, comm): (u64, &str),
    nginx_pid: u64,
) {
    assert_eq!(
        flows.len(),
        2,
        "exactly one request and one response: {flows:#?}"
    );
    let url = format!("https://{SERVER_V4}{path}");
    let server_view = flows[0]["extensions"]["process"]["comm"] == "nginx";
    let (me, peer, direction) = if server_view {
        ((nginx_pid, "nginx"), (pid, comm), "INGRESS")
    } else {
        ((pid, comm), (nginx_pid, "nginx"), "EGRESS")
    };
    for (f, ty) in flows.iter().zip(["REQUEST", "RESPONSE"]) {
        assert_eq!(f["l7"]["type"], ty, "{f}");
        assert_eq!(f["l7"]["http"]["method"], "GET", "{f}");
        // Over TLS: the scheme is https, whatever the HTTP/1 decoder assumes for cleartext.
        assert_eq!(f["l7"]["http"]["url"], url.as_str(), "{f}");
        assert_eq!(f["l7"]["http"]["protocol"], protocol, "{f}");
        assert_eq!(f["extensions"]["l7_source"], "openssl_uprobe", "{f}");
        assert_eq!(f["extensions"]["process"]["pid"], me.0, "{f}");
        assert_eq!(f["extensions"]["process"]["comm"], me.1, "{f}");
        // The other end's owner is looked up when the record is released (known by then
        // unless its event was late): when known, it must be right.
        let p = &f["extensions"]["peer_process"];
        assert!(
            p.is_null() || (p["pid"] == peer.0 && p["comm"] == peer.1),
            "peer {f}"
        );
        // Hubble's traffic_direction of an L7 flow is the connection's, for the endpoint the
        // flow is about: EGRESS at the client, INGRESS at the server.
        assert_eq!(f["traffic_direction"], direction, "{f}");
    }
    assert_eq!(flows[1]["l7"]["http"]["code"], code, "{}", flows[1]);
    assert_eq!(flows[0]["IP"]["source"], CLIENT_V4);
    assert_eq!(flows[0]["IP"]["destination"], SERVER_V4);
    assert_eq!(flow::dst_port(&flows[0]), 443);
}

#[test]
fn https_h2_and_urllib_are_decoded_from_openssl_plaintext() {
    require_root();
    require_tool("bpftool");
    require_tool("curl");
    let link = Link::new();
    let tmp = TempDir::new();
    make_ca(&tmp.0);
    std::fs::write(tmp.0.join("page.txt"), "flowscope over TLS\n").unwrap();
    let nginx = start_https_nginx(&link.server, &tmp.0);
    let sock = tmp.0.join("run/observer.sock").display().to_string();
    let mut agent = start_agent(
        &link.server,
        &format!("-i {} --listen unix://{sock} -o none", link.server_if),
    );
    let bpf_ids = bpf_prog_ids_of(agent.pid());
    let ca = tmp.0.join("ca.pem").display().to_string();

    // curl, HTTP/1.1.
    let ng = nginx.pid() as u64;
    curl_http11_checked(&link.client, &ca, &sock, "/page.txt?client=curl1", ng);

    // curl, HTTP/2 (ALPN h2): one stream, answered 418 by nginx.
    let (curl2, out) = run_with_pid(
        &link.client,
        &format!(
            "curl -sS --http2 --cacert {ca} -o /dev/null -w \"%{{local_port}} %{{http_code}} %{{http_version}}\" https://{SERVER_V4}/teapot"
        ),
    );
    let f: Vec<&str> = out.split_whitespace().collect();
    assert_eq!((f[1], f[2]), ("418", "2"), "curl --http2: {out}");
    let flows = l7_of(&sock, f[0].parse().unwrap(), 2);
    check_exchange(&flows, "/teapot", 418, "HTTP/2", (curl2, "curl"), ng);

    // Python's urllib (its ssl module links the same libssl.so.3).
    let script = tmp.0.join("fetch.py");
    std::fs::write(
        &script,
        format!(
            "import ssl, sys, urllib.request\n\
             ctx = ssl.create_default_context(cafile={ca:?})\n\
             r = urllib.request.urlopen('https://{SERVER_V4}/page.txt?client=urllib', context=ctx)\n\
             port = r.fp.raw._sock.getsockname()[1]\n\
             r.read()\n\
             print(port, r.status)\n"
        ),
    )
    .unwrap();
    let (py, out) = run_with_pid(&link.client, &format!("python3 {}", script.display()));
    let f: Vec<u64> = out.split_whitespace().map(|x| x.parse().unwrap()).collect();
    assert_eq!(f[1], 200, "urllib: {out}");
    let flows = l7_of(&sock, f[0], 2);
    // The kernel's comm of the interpreter.
    let py_comm = if flows[0]["extensions"]["process"]["comm"] == "nginx" {
        flows[0]["extensions"]["peer_process"]["comm"].as_str()
    } else {
        flows[0]["extensions"]["process"]["comm"].as_str()
    }
    .unwrap_or("python3")
    .to_string();
    assert!(
        py_comm.starts_with("python3"),
        "urllib's process: {flows:#?}"
    );
    let py = (py, py_comm.as_str());
    check_exchange(&flows, "/page.txt?client=urllib", 200, "HTTP/1.1", py, ng);

    // status: nginx's libssl is hooked; counters say what the plaintext did (published every
    // 100 ms: wait for the last exchange's).
    let st = status_when(&sock, "engine_tls_plaintext_flows", 3);
    let libs = st["tls_libraries"].as_array().expect("tls_libraries");
    let mine: Vec<&Value> = libs.iter().filter(|l| l["pid"] == nginx.pid()).collect();
    assert_eq!(mine.len(), 1, "nginx's TLS library in status: {libs:#?}");
    assert_eq!(mine[0]["comm"], "nginx");
    assert_eq!(mine[0]["kind"], "openssl 3");
    assert_eq!(mine[0]["hooked"], true, "{}", mine[0]);
    assert_eq!(mine[0]["detail"], "", "{}", mine[0]);
    assert!(
        mine[0]["library"]
            .as_str()
            .unwrap()
            .ends_with("/libssl.so.3"),
        "{}",
        mine[0]
    );
    let c = &st["counters"];
    assert!(
        c["engine_tls_plaintext_flows"].as_u64().unwrap() >= 3,
        "{c}"
    );
    assert_eq!(c["tls_kernel_ring_full_lost"], 0, "{c}");
    assert_eq!(c["tls_plaintext_unavailable"], 0, "{c}");
    assert_eq!(c["tls_socket_link_unavailable"], 0, "{c}");

    // Ctrl-C: every program (uprobes included) goes with the agent.
    agent.signal_and_wait(libc::SIGINT, Duration::from_secs(10));
    assert_bpf_released(&bpf_ids);
    drop(nginx);
}

/// The L7 flows of the connection whose request asked for `url`, waiting until there are `n`
/// (for clients that don't say which local port they used).
fn l7_by_url(sock: &str, url: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let all = observe(sock, "--last 1000 -o json --type l7");
        let port = all.iter().find(|f| f["l7"]["http"]["url"] == url).map(|f| {
            match (flow::src_port(f), flow::dst_port(f)) {
                (443, client) | (client, _) => client,
            }
        });
        let got: Vec<Value> = match port {
            Some(p) => all.into_iter().filter(|f| is_client_port(f, p)).collect(),
            None => Vec::new(),
        };
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// HTTP/2 over TLS from nghttp2's own client (`nghttp`) and HTTP/1.1 from Python `requests`
/// (Debian's python3-requests over urllib3 and the ssl module), both through libssl.so.3, with
/// the engine on two worker threads: each chunk of plaintext must reach the worker holding its
/// connection's packets (flows::shard), so the records are exact whichever worker that is.
#[test]
fn nghttp2_and_python_requests_on_two_engine_workers() {
    require_root();
    require_tool("nghttp");
    if !sh_any("/usr/bin/python3 -c 'import requests'")
        .status
        .success()
    {
        panic!("/usr/bin/python3 has no requests module: apt-get install python3-requests (./dev.sh test installs it)");
    }
    let link = Link::new();
    let tmp = TempDir::new();
    make_ca(&tmp.0);
    std::fs::write(tmp.0.join("page.txt"), "flowscope over TLS\n").unwrap();
    let nginx = start_https_nginx(&link.server, &tmp.0);
    let ng = nginx.pid() as u64;
    let sock = tmp.0.join("run/observer.sock").display().to_string();
    let agent = start_agent(
        &link.server,
        &format!(
            "-i {} --listen unix://{sock} -o none --workers 2",
            link.server_if
        ),
    );
    assert!(
        agent
            .stderr()
            .iter()
            .any(|l| l.contains("decoding on 2 engine worker thread")),
        "{:?}",
        agent.stderr()
    );
    let ca = tmp.0.join("ca.pem").display().to_string();

    // nghttp: h2 by ALPN, one stream per run; -v prints the response's pseudo-headers.
    let url = format!("https://{SERVER_V4}/page.txt?client=nghttp");
    let (pid, out) = run_with_pid(&link.client, &format!("nghttp -n -v {url}"));
    assert!(out.contains(":status: 200"), "nghttp: {out}");
    let flows = l7_by_url(&sock, &url, 2);
    check_exchange(
        &flows,
        "/page.txt?client=nghttp",
        200,
        "HTTP/2",
        (pid, "nghttp"),
        ng,
    );
    let url = format!("https://{SERVER_V4}/teapot?client=nghttp");
    let (pid, out) = run_with_pid(&link.client, &format!("nghttp -n -v {url}"));
    assert!(out.contains(":status: 418"), "nghttp: {out}");
    let flows = l7_by_url(&sock, &url, 2);
    check_exchange(
        &flows,
        "/teapot?client=nghttp",
        418,
        "HTTP/2",
        (pid, "nghttp"),
        ng,
    );

    // Python requests, verifying nginx's certificate against the CA made here.
    let script = tmp.0.join("requests_fetch.py");
    std::fs::write(
        &script,
        format!(
            "import requests\n\
             r = requests.get('https://{SERVER_V4}/page.txt?client=requests', verify={ca:?})\n\
             print(r.status_code, r.text.strip())\n"
        ),
    )
    .unwrap();
    let (pid, out) = run_with_pid(
        &link.client,
        &format!("/usr/bin/python3 {}", script.display()),
    );
    assert_eq!(out.trim(), "200 flowscope over TLS", "requests: {out}");
    let url = format!("https://{SERVER_V4}/page.txt?client=requests");
    let flows = l7_by_url(&sock, &url, 2);
    check_exchange(
        &flows,
        "/page.txt?client=requests",
        200,
        "HTTP/1.1",
        (pid, "python3"),
        ng,
    );

    // Both workers' counters add up in status; every chunk found its flow. The engines'
    // counters reach status with their periodic snapshot, after the flows: wait for the last
    // connection's.
    let st = status_when(&sock, "engine_tls_plaintext_flows", 3);
    let c = &st["counters"];
    assert!(
        c["engine_tls_plaintext_flows"].as_u64().unwrap() >= 3,
        "{c}"
    );
    assert_eq!(c["engine_tls_plaintext_no_flow"], 0, "{c}");
    assert_eq!(c["tls_plaintext_without_socket"], 0, "{c}");
    drop(agent);
    drop(nginx);
}

/// A TLS connection whose plaintext no probe sees is a blind spot, named in status: the server
/// is `openssl s_server -www`, which maps the hooked libssl but reads and writes through an
/// SSL BIO (OpenSSL's internal entry points, not SSL_read/SSL_write), and the client is wget,
/// built on GnuTLS (not hooked).
#[test]
fn tls_without_plaintext_is_a_blind_spot_in_status() {
    require_root();
    require_tool("wget");
    let link = Link::new();
    let tmp = TempDir::new();
    make_ca(&tmp.0);
    let d = tmp.0.display();
    let mut server = link.server.spawn(&format!(
        "openssl s_server -accept 4433 -cert {d}/server.pem -key {d}/server.key -www -quiet"
    ));
    link.server.wait_listening(4433, "s_server");
    let sock = tmp.0.join("run/observer.sock").display().to_string();
    let _agent = start_agent(
        &link.server,
        &format!("-i {} --listen unix://{sock} -o none", link.server_if),
    );
    link.client.exec(&format!(
        "wget -q -O /dev/null --ca-certificate={d}/ca.pem https://{SERVER_V4}:4433/"
    ));
    let status = || agent_status(&sock);
    let deadline = Instant::now() + Duration::from_secs(10);
    let (st, row) = loop {
        let st = status();
        let row = st["tls_libraries"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["pid"] == server.pid() && l["kind"] == "blind spot")
            .cloned();
        // Counters are published every 100 ms: wait for them too.
        let counted = st["counters"]["engine_tls_flows_without_plaintext"].as_u64() >= Some(1);
        if (row.is_some() && counted) || Instant::now() > deadline {
            break (st, row);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let row = row.unwrap_or_else(|| panic!("no blind spot for s_server in {st:#}"));
    assert_eq!(row["comm"], "openssl", "{row}");
    assert_eq!(row["hooked"], false, "{row}");
    let detail = row["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("1 TLS connection(s) not decoded: its libssl is hooked, but"),
        "{detail}"
    );
    // Its libssl itself is listed as hooked.
    assert!(
        st["tls_libraries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["pid"] == server.pid() && l["kind"] == "openssl 3" && l["hooked"] == true),
        "{st:#}"
    );
    let c = &st["counters"];
    assert!(c["engine_tls_flows_on_wire"].as_u64().unwrap() >= 1, "{c}");
    assert!(
        c["engine_tls_flows_without_plaintext"].as_u64().unwrap() >= 1,
        "{c}"
    );
    assert_eq!(c["engine_tls_plaintext_flows"], 0, "{c}");
    // Nothing was decoded from the ciphertext.
    let l7 = observe(&sock, "--last 1000 -o json --type l7");
    assert!(l7.is_empty(), "L7 flows from TLS records: {l7:#?}");
    server.signal_and_wait(libc::SIGTERM, Duration::from_secs(5));
}

/// A TLS client with OpenSSL linked into its executable (built here with `gcc` against
/// Debian's libssl.a): `client IP PORT CAFILE PATH DELAY_MS` fetches PATH after DELAY_MS and
/// prints its local port and the status line's code.
const STATIC_CLIENT_C: &str = r#"#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
	/* argv: ip port cafile path delay_ms */
	usleep(atoi(argv[5]) * 1000);
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_load_verify_locations(ctx, argv[3], NULL);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])) };
	inet_pton(AF_INET, argv[1], &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) { perror("connect"); return 1; }
	SSL *ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	if (SSL_connect(ssl) != 1) { fprintf(stderr, "handshake failed\n"); return 1; }
	struct sockaddr_in me; socklen_t len = sizeof(me);
	getsockname(fd, (struct sockaddr *)&me, &len);
	char req[512];
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", argv[4], argv[1]);
	SSL_write(ssl, req, strlen(req));
	char buf[4096]; int n, total = 0; char first[13] = {0};
	while ((n = SSL_read(ssl, buf, sizeof(buf))) > 0) { if (!total) memcpy(first, buf, 12); total += n; }
	printf("%d %s\n", ntohs(me.sin_port), first + 9);
	SSL_shutdown(ssl);
	close(fd);
	return 0;
}
"#;

/// Statically linked OpenSSL (issue 19 item 2): found by the executable's symbol table when the
/// process execs, hooked on the executable, decoded like the shared library's plaintext. The
/// server (`openssl s_server -www`) does not go through SSL_read/SSL_write, so every decoded
/// byte is the static client's.
#[test]
fn static_openssl_in_the_executable_is_hooked() {
    require_root();
    require_tool("gcc");
    let link = Link::new();
    let tmp = TempDir::new();
    make_ca(&tmp.0);
    let d = tmp.0.display();
    std::fs::write(tmp.0.join("client.c"), STATIC_CLIENT_C).unwrap();
    sh(&format!(
        "cd {d} && gcc -O1 client.c -o client -Wl,-Bstatic -lssl -lcrypto -Wl,-Bdynamic -ldl -lpthread"
    ));
    let mut server = link.server.spawn(&format!(
        "openssl s_server -accept 4433 -cert {d}/server.pem -key {d}/server.key -www -quiet"
    ));
    link.server.wait_listening(4433, "s_server");
    let sock = tmp.0.join("run/observer.sock").display().to_string();
    let _agent = start_agent(
        &link.server,
        &format!("-i {} --listen unix://{sock} -o none", link.server_if),
    );
    // The client waits 3 s before its first TLS call: the agent hooks an executable when its
    // exec is reported, 200 ms later (a process's calls before that are not seen); the margin
    // is for a loaded machine, where 1.5 s once proved too little.
    let (pid, out) = run_with_pid(
        &link.client,
        &format!("{d}/client {SERVER_V4} 4433 {d}/ca.pem /static?x=1 3000"),
    );
    let f: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(f.get(1), Some(&"200"), "client: {out}");
    let flows = l7_of(&sock, f[0].parse().unwrap(), 2);
    assert_eq!(flows.len(), 2, "{flows:#?}");
    for (fl, ty) in flows.iter().zip(["REQUEST", "RESPONSE"]) {
        assert_eq!(fl["l7"]["type"], ty, "{fl}");
        assert_eq!(fl["l7"]["http"]["method"], "GET", "{fl}");
        assert_eq!(
            fl["l7"]["http"]["url"],
            format!("https://{SERVER_V4}/static?x=1"),
            "{fl}"
        );
        assert_eq!(fl["extensions"]["l7_source"], "openssl_uprobe", "{fl}");
        assert_eq!(fl["extensions"]["process"]["pid"], pid, "{fl}");
        assert_eq!(fl["extensions"]["process"]["comm"], "client", "{fl}");
    }
    assert_eq!(flows[1]["l7"]["http"]["code"], 200, "{}", flows[1]);
    // status named the executable as a static OpenSSL, hooked.
    let st = agent_status(&sock);
    let row = st["tls_libraries"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["pid"] == pid)
        .unwrap_or_else(|| panic!("no row for the static client in {st:#}"));
    assert_eq!(row["kind"], "openssl (static)", "{row}");
    assert_eq!(row["hooked"], true, "{row}");
    assert_eq!(row["library"], format!("{d}/client"), "{row}");
    server.signal_and_wait(libc::SIGTERM, Duration::from_secs(5));
}

/// A gRPC server and client over TLS (Debian's grpcio, which links the system libssl and
/// drives it through memory BIOs), with a traceparent in the call's metadata.
const GRPC_PY: &str = r#"
import grpc, sys, time
from concurrent import futures
ident = lambda b: b
d = sys.argv[2]
if sys.argv[1] == 'server':
    s = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    h = grpc.method_handlers_generic_handler('demo.Echo', {'Say': grpc.unary_unary_rpc_method_handler(
        lambda r, c: r, request_deserializer=ident, response_serializer=ident)})
    s.add_generic_rpc_handlers((h,))
    creds = grpc.ssl_server_credentials([(open(d + '/server.key', 'rb').read(), open(d + '/server.pem', 'rb').read())])
    s.add_secure_port('0.0.0.0:50443', creds)
    s.start()
    print('serving', flush=True)
    s.wait_for_termination()
else:
    creds = grpc.ssl_channel_credentials(root_certificates=open(d + '/ca.pem', 'rb').read())
    ch = grpc.secure_channel(sys.argv[3] + ':50443', creds)
    call = ch.unary_unary('/demo.Echo/Say', request_serializer=ident, response_deserializer=ident)
    tp = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'
    print(call(b'hello', metadata=[('traceparent', tp)]).decode())
"#;

/// gRPC over TLS (issue 19): service, method, gRPC status and the trace id from the call's
/// traceparent, decoded from grpcio's plaintext.
#[test]
fn grpc_over_tls_with_traceparent() {
    require_root();
    let py = "/usr/bin/python3";
    let link = Link::new();
    let tmp = TempDir::new();
    make_ca(&tmp.0);
    let d = tmp.0.display();
    std::fs::write(tmp.0.join("grpc_echo.py"), GRPC_PY).unwrap();
    let server = link
        .server
        .spawn(&format!("{py} {d}/grpc_echo.py server {d}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server.stdout().iter().any(|l| l == "serving") {
        assert!(
            Instant::now() < deadline,
            "grpc server: {:?}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let sock = tmp.0.join("run/observer.sock").display().to_string();
    let _agent = start_agent(
        &link.server,
        &format!("-i {} --listen unix://{sock} -o none", link.server_if),
    );
    let out = link
        .client
        .exec(&format!("{py} {d}/grpc_echo.py client {d} {SERVER_V4}"));
    assert_eq!(out.trim(), "hello");
    let deadline = Instant::now() + Duration::from_secs(10);
    let flows = loop {
        let got: Vec<Value> = observe(&sock, "--last 1000 -o json --type l7")
            .into_iter()
            .filter(|f| flow::dst_port(f) == 50443 || flow::src_port(f) == 50443)
            .collect();
        if got.len() >= 2 || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let resp = flows
        .iter()
        .find(|f| f["l7"]["type"] == "RESPONSE")
        .unwrap_or_else(|| panic!("no gRPC response flow: {flows:#?}"));
    assert_eq!(resp["l7"]["http"]["method"], "POST", "{resp}");
    assert_eq!(
        resp["l7"]["http"]["url"],
        format!("https://{SERVER_V4}:50443/demo.Echo/Say"),
        "{resp}"
    );
    assert_eq!(resp["l7"]["http"]["code"], 200, "{resp}");
    assert_eq!(resp["extensions"]["l7_source"], "openssl_uprobe", "{resp}");
    assert_eq!(resp["extensions"]["grpc"]["service"], "demo.Echo", "{resp}");
    assert_eq!(resp["extensions"]["grpc"]["method"], "Say", "{resp}");
    assert_eq!(
        resp["extensions"]["grpc"]["status_source"], "trailers",
        "{resp}"
    );
    // OK (0), which proto3 JSON leaves out.
    let code = &resp["extensions"]["grpc"]["status_code"];
    assert_eq!(code.as_u64().unwrap_or(0), 0, "{resp}");
    assert_eq!(
        resp["trace_context"]["parent"]["trace_id"], "0af7651916cd43dd8448eb211c80319c",
        "{resp}"
    );
    // One of the two Python processes (the end whose plaintext came first).
    assert!(resp["extensions"]["process"]["pid"].is_u64(), "{resp}");
    drop(server);
}

/// Sizes of the agent's BPF map mappings (`anon_inode:bpf-map` in /proc/PID/maps): the rings
/// it has mapped (BENCHMARKS.md "Soak memory under 50 MB").
fn bpf_map_mappings(pid: i32) -> Vec<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .expect("agent maps")
        .lines()
        .filter(|l| l.ends_with("anon_inode:bpf-map"))
        .filter_map(|l| {
            let (a, b) = l.split_whitespace().next()?.split_once('-')?;
            Some(u64::from_str_radix(b, 16).ok()? - u64::from_str_radix(a, 16).ok()?)
        })
        .collect()
}

/// The capture ring in these tests (1 MiB: mapped twice, 2 MiB), so that no other ring the
/// agent maps is as large as the TLS plaintext ring (4 MiB or more).
const SMALL_CAPTURE_RING: &str = "--ring-size 1048576";

/// Whether the agent maps a ring of at least 3 MiB: only the TLS plaintext ring, with the
/// small capture ring.
fn maps_tls_ring(pid: i32) -> bool {
    bpf_map_mappings(pid).iter().any(|&b| b >= 3 << 20)
}

#[test]
fn no_tls_library_no_plaintext_ring_mapped() {
    require_root();
    let link = Link::new();
    let tmp = TempDir::new();
    // A /proc with no process in it: the library scans find no TLS library to hook.
    let empty_proc = tmp.0.join("empty-proc");
    std::fs::create_dir_all(&empty_proc).unwrap();
    let sock = tmp.0.join("run/observer.sock").display().to_string();
    let agent = start_agent(
        &link.server,
        &format!(
            "-i {} --listen unix://{sock} -o none {SMALL_CAPTURE_RING} --proc-root {}",
            link.server_if,
            empty_proc.display()
        ),
    );
    let st = agent_status(&sock);
    let c = &st["counters"];
    assert_eq!(c["tls_plaintext_unavailable"], 0, "probes loaded: {c}");
    assert_eq!(c["tls_libraries_hooked"], 0, "{c}");
    assert_eq!(c["tls_plaintext_ring_mapped"], 0, "{c}");
    let maps = bpf_map_mappings(agent.pid());
    assert!(!maps.is_empty(), "the capture ring is mapped");
    assert!(!maps_tls_ring(agent.pid()), "no TLS ring in {maps:?}");
}

#[test]
fn plaintext_ring_mapped_when_a_library_is_hooked_after_start() {
    require_root();
    require_tool("curl");
    let link = Link::new();
    let tmp = TempDir::new();
    make_ca(&tmp.0);
    std::fs::write(tmp.0.join("page.txt"), "mapped late\n").unwrap();
    let sock = tmp.0.join("run/observer.sock").display().to_string();
    let agent = start_agent(
        &link.server,
        &format!(
            "-i {} --listen unix://{sock} -o none {SMALL_CAPTURE_RING}",
            link.server_if
        ),
    );
    // nginx starts after the agent: its exec record (the small execs ring, which wakes the agent)
    // gets its libssl scanned well before the 30 s full rescan. (Another process on the host
    // may have had libssl hooked, and the ring mapped, from the start.)
    let nginx = start_https_nginx(&link.server, &tmp.0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let st = agent_status(&sock);
        let hooked = st["tls_libraries"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|l| l["pid"] == nginx.pid() && l["hooked"] == true);
        if hooked {
            break;
        }
        assert!(Instant::now() < deadline, "nginx not hooked: {st:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let ca = tmp.0.join("ca.pem").display().to_string();
    let ng = nginx.pid() as u64;
    curl_http11_checked(&link.client, &ca, &sock, "/page.txt?late", ng);
    let c = agent_status(&sock)["counters"].clone();
    assert_eq!(c["tls_plaintext_ring_mapped"], 1, "{c}");
    assert_eq!(c["tls_kernel_ring_full_lost"], 0, "{c}");
    assert_eq!(c["tls_kernel_exec_events_lost"], 0, "{c}");
    assert!(
        maps_tls_ring(agent.pid()),
        "{:?}",
        bpf_map_mappings(agent.pid())
    );
    drop(nginx);
}
