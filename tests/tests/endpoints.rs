//! End-to-end: the ends of flows as Hubble clients see them over the Observer API — reserved
//! identities (`host` for a process of this machine, `world` for an address no process here
//! owns and that is not the node's), the local
//! pod of a socket (namespace, pod name, Deployment) from its cgroup path and the kubelet's
//! pod log directories, `GetNamespaces` from those pods, and `destination_names` from the DNS
//! answers the agent saw (a real DNS server, dnsmasq, answering a CNAME chain).
//!
//! The agent captures in the client's network namespace (the "node"); the servers are in the
//! other. The client is tests/python/hubble_client.py (grpcio stubs generated at run time from
//! observer/proto), as in hubble_compat.rs.

use std::{
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use flowscope_e2e::*;
use serde_json::{json, Value};

fn python() -> String {
    std::env::var("FLOWSCOPE_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".to_string())
}

fn py_cmd(args: &str) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/hubble_client.py");
    format!("{} {} {args}", python(), script.display())
}

fn py(args: &str) -> Vec<Value> {
    json_lines(
        &sh(&py_cmd(args))
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(String::from)
            .collect::<Vec<_>>(),
    )
}

fn require_python_grpc() {
    let out = sh_any(&py_cmd("check"));
    assert!(
        out.status.success(),
        "the Python gRPC client cannot run with {}: {}{}\ninstall Debian's python3-grpcio and \
         python3-grpc-tools (./dev.sh test does), or set $FLOWSCOPE_PYTHON",
        python(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
}

/// Polls the agent's flows until `done` holds for them (or fails after 15 s, listing them).
fn flows_until(server: &str, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let flows: Vec<Value> = py(&format!("get --server {server}"))
            .into_iter()
            .filter_map(|l| l.get("flow").cloned())
            .collect();
        if done(&flows) {
            return flows;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not in the agent's flows:\n{}",
            flows
                .iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
        thread::sleep(Duration::from_millis(300));
    }
}

fn url(f: &Value) -> &str {
    f["l7"]["http"]["url"].as_str().unwrap_or("")
}

/// cgroup v2 directories made for the test, removed (deepest first) on drop; directories that
/// were there before are left alone.
struct CgroupDirs(Vec<PathBuf>);

impl CgroupDirs {
    fn create(root: &Path, rel: &str) -> Self {
        let mut made = Vec::new();
        let mut dir = root.to_path_buf();
        for part in rel.split('/') {
            dir.push(part);
            if !dir.exists() {
                std::fs::create_dir(&dir)
                    .unwrap_or_else(|e| panic!("cannot create cgroup {}: {e}", dir.display()));
                made.push(dir.clone());
            }
        }
        CgroupDirs(made)
    }
}

impl Drop for CgroupDirs {
    fn drop(&mut self) {
        for dir in self.0.iter().rev() {
            // A cgroup goes once its processes have exited; give a killed one a moment.
            for _ in 0..50 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

#[test]
fn local_sockets_are_host_or_their_pod() {
    require_root();
    require_python_grpc();
    require_tool("curl");
    let link = Link::new();
    let tmp = TempDir::new();
    std::fs::write(tmp.0.join("page.txt"), "flowscope\n").unwrap();
    let _nginx = start_nginx(&link.server, &tmp.0);

    // What a kubelet leaves on a node for a pod `shop/cart-5d78c9869d-x7k2q` of Deployment
    // `cart` (the kubelet itself is not running here; the test builds the same layout): the
    // pod's cgroup in the systemd driver's naming, a container's scope below it, and the
    // pod's log directory `<namespace>_<pod>_<uid>`.
    let uid = format!("7c1f2a9e-3b4d-4e5f-8a6b-{:012x}", std::process::id());
    let container = format!("{:064x}", u64::from(std::process::id()) << 20 | 0xc0ffee);
    let pod = "cart-5d78c9869d-x7k2q";
    let cg_root = ebpf_kprobe::cgroup::cgroup2_mount().expect("a cgroup v2 hierarchy");
    let scope_rel = format!(
        "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/cri-containerd-{container}.scope",
        uid.replace('-', "_")
    );
    let cgroups = CgroupDirs::create(&cg_root, &scope_rel);
    let scope = cg_root.join(&scope_rel);
    let pods_log = tmp.0.join("var-log-pods");
    std::fs::create_dir_all(pods_log.join(format!("shop_{pod}_{uid}/cart"))).unwrap();
    std::fs::write(pods_log.join(format!("shop_{pod}_{uid}/cart/0.log")), "").unwrap();

    let sock = tmp.0.join("run/observer.sock").display().to_string();
    let unix = format!("unix://{sock}");
    let mut agent = start_agent(
        &link.client,
        &format!(
            "-i {} --listen {unix} --pods-log-dir {} -o none",
            link.client_if,
            pods_log.display()
        ),
    );

    // One request from a process moved into the pod's container cgroup, one from the node.
    let curl = |from: &str| {
        format!(
            "curl -sS -o /dev/null -w %{{http_code}} --max-time 10 http://{SERVER_V4}/page.txt?from={from}"
        )
    };
    // Moved from the host's side: `ip netns exec` mounts its own /sys, without the cgroup
    // hierarchy; the cgroup is inherited through the exec into the namespace.
    let code = sh(&format!(
        "sh -c 'echo $$ > {}/cgroup.procs && exec {}{}'",
        scope.display(),
        link.client.prefix(),
        curl("pod")
    ));
    assert_eq!(code.trim(), "200");
    assert_eq!(link.client.exec(&curl("node")).trim(), "200");

    let is_req = |f: &Value, from: &str| {
        f["l7"]["type"] == "REQUEST" && url(f).ends_with(&format!("from={from}"))
    };
    let is_resp = |f: &Value, from: &str| {
        f["l7"]["type"] == "RESPONSE" && url(f).ends_with(&format!("from={from}"))
    };
    let flows = flows_until(&unix, "both exchanges", |fs| {
        ["pod", "node"]
            .iter()
            .all(|from| fs.iter().any(|f| is_req(f, from)) && fs.iter().any(|f| is_resp(f, from)))
    });
    let one = |pick: &dyn Fn(&Value) -> bool| flows.iter().find(|f| pick(f)).unwrap().clone();

    let the_pod = json!({
        "identity": 3,
        "namespace": "shop",
        "labels": ["k8s:io.kubernetes.pod.namespace=shop", "reserved:unmanaged"],
        "pod_name": pod,
        "workloads": [{"name": "cart", "kind": "Deployment"}],
    });
    // nginx runs on this machine too (in the other namespace), so the agent finds its socket's
    // owner: a process of this node, `host`, like the node's own curl.
    let host = json!({"identity": 1, "labels": ["reserved:host"]});
    let req = one(&|f| is_req(f, "pod"));
    assert_eq!(req["source"], the_pod, "{req}");
    assert_eq!(req["destination"], host, "{req}");
    let resp = one(&|f| is_resp(f, "pod"));
    assert_eq!(resp["source"], host, "{resp}");
    assert_eq!(resp["destination"], the_pod, "{resp}");
    let req = one(&|f| is_req(f, "node"));
    assert_eq!(req["source"], host, "{req}");
    assert_eq!(req["destination"], host, "{req}");

    // `hubble observe --namespace shop` (the server-side pod filter): the pod's flows only.
    let in_shop: Vec<Value> = py(&format!(
        "get --server {unix} --whitelist '{{\"source_pod\": [\"shop/\"]}}' \
         --whitelist '{{\"destination_pod\": [\"shop/\"]}}'"
    ))
    .into_iter()
    .filter_map(|l| l.get("flow").cloned())
    .collect();
    assert!(in_shop.iter().any(|f| is_req(f, "pod")), "{in_shop:#?}");
    assert!(
        in_shop
            .iter()
            .all(|f| f["source"]["namespace"] == "shop" || f["destination"]["namespace"] == "shop"),
        "{in_shop:#?}"
    );

    // `hubble list namespaces`: the pod's.
    let ns = py(&format!("namespaces --server {unix}"));
    assert_eq!(
        ns[0]["namespaces"],
        json!([{"cluster": "default", "namespace": "shop"}]),
        "{ns:#?}"
    );

    assert_eq!(
        agent.signal_and_wait(libc::SIGINT, Duration::from_secs(10)),
        Some(0),
        "agent exit on SIGINT"
    );
    drop(cgroups);
    assert!(
        !cg_root.join(&scope_rel).exists(),
        "the test's cgroups are removed"
    );
}

#[test]
fn names_from_dns_answers_go_on_the_flows_to_their_addresses() {
    require_root();
    require_python_grpc();
    require_tool("dnsmasq");
    require_tool("dig");
    require_tool("curl");
    let link = Link::new();
    let tmp = TempDir::new();
    // The answered address lives in the server's namespace, one hop away.
    const ANSWER: &str = "192.0.2.80";
    link.server.exec(&format!("ip addr add {ANSWER}/32 dev lo"));
    link.client
        .exec(&format!("ip route add 192.0.2.0/24 via {SERVER_V4}"));
    // A real DNS server: www is a CNAME of api, which has an A record. dnsmasq answers its
    // own records with TTL 0 (its --local-ttl default), so what keeps the names is the
    // agent's minimum TTL.
    let _dnsmasq = link.server.spawn(&format!(
        "dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
         --listen-address={SERVER_V4} --bind-interfaces --pid-file= --user=root \
         --host-record=api.flowscope.test,{ANSWER} --cname=www.flowscope.test,api.flowscope.test"
    ));
    let dig = format!("dig +short +time=1 +tries=1 @{SERVER_V4} www.flowscope.test A");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !link.client.exec_any(&dig).status.success() {
        assert!(Instant::now() < deadline, "dnsmasq did not answer");
        thread::sleep(Duration::from_millis(100));
    }

    let sock = tmp.0.join("run/observer.sock").display().to_string();
    let unix = format!("unix://{sock}");
    let mut agent = start_agent(
        &link.client,
        &format!("-i {} --listen {unix} -o none", link.client_if),
    );
    let answer = link.client.exec(&dig);
    assert_eq!(
        answer.split_whitespace().collect::<Vec<_>>(),
        ["api.flowscope.test.", ANSWER],
        "{answer}"
    );
    // Nothing listens on that port: the SYN and the RST are the connection's flows.
    link.client
        .exec_any(&format!("curl -sS --max-time 3 http://{ANSWER}:8081/"));

    let to_answer = |f: &Value| f["IP"]["destination"] == ANSWER;
    let flows = flows_until(&unix, "the SYN to the answered address", |fs| {
        fs.iter()
            .any(|f| to_answer(f) && f["verdict"] == "FORWARDED")
    });
    // The captured SYN (the kernel drop program may also report the server side's drop of it
    // as a DROPPED flow, named the same way: checked below).
    let syn = flows
        .iter()
        .find(|f| to_answer(f) && f["verdict"] == "FORWARDED")
        .unwrap_or_else(|| panic!("no captured SYN to {ANSWER}: {flows:#?}"));
    assert_eq!(
        syn["destination_names"],
        json!(["www.flowscope.test", "api.flowscope.test"]),
        "{syn}"
    );
    assert_eq!(syn["destination"]["identity"], 2, "{syn}");
    assert_eq!(
        syn["source"]["identity"], 1,
        "curl is a local process: {syn}"
    );
    assert!(syn.get("source_names").is_none(), "{syn}");
    for dropped in flows
        .iter()
        .filter(|f| to_answer(f) && f["verdict"] == "DROPPED")
    {
        assert_eq!(
            dropped["destination_names"],
            json!(["www.flowscope.test", "api.flowscope.test"]),
            "{dropped}"
        );
    }
    // The RST back comes from the named address.
    if let Some(rst) = flows.iter().find(|f| f["IP"]["source"] == ANSWER) {
        assert_eq!(
            rst["source_names"],
            json!(["www.flowscope.test", "api.flowscope.test"]),
            "{rst}"
        );
    }
    // `hubble observe --to-fqdn '*.flowscope.test'`: the flows to the answered address.
    let named: Vec<Value> = py(&format!(
        "get --server {unix} --whitelist '{{\"destination_fqdn\": [\"*.flowscope.test\"]}}'"
    ))
    .into_iter()
    .filter_map(|l| l.get("flow").cloned())
    .collect();
    assert!(
        !named.is_empty() && named.iter().all(to_answer),
        "{named:#?}"
    );

    // The DNS flows say where they were read: off the wire (Cilium says `proxy`).
    let dns = flows
        .iter()
        .find(|f| f["l7"]["dns"]["query"] == "www.flowscope.test.")
        .expect("the DNS flows");
    assert_eq!(dns["l7"]["dns"]["observation_source"], "wire", "{dns}");

    assert_eq!(
        agent.signal_and_wait(libc::SIGINT, Duration::from_secs(10)),
        Some(0),
        "agent exit on SIGINT"
    );
}

/// An HTTP server that accepts, waits 200 ms, then reads the request and answers: its
/// accepted socket is named by a kernel event only at that first read (on kernels with the
/// socket tracepoints), long after curl's request was captured on the client's side.
const PY_SLOW_READER: &str = r#"
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(16)
print("listening", file=sys.stderr, flush=True)
while True:
    c, _ = s.accept()
    time.sleep(0.2)
    c.recv(4096)
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
    c.close()
"#;

/// The far end's owner is waited for like the near end's when its address is this node's:
/// the request to a server on this machine is `host` even when the kernel names the server's
/// socket only after the request went out (the destination is not taken for `world`).
#[test]
fn a_local_server_slow_to_read_is_host() {
    require_root();
    require_python_grpc();
    require_tool("curl");
    let link = Link::new();
    let tmp = TempDir::new();
    let script = tmp.0.join("slow.py");
    std::fs::write(&script, PY_SLOW_READER).unwrap();
    let mut server = link
        .server
        .spawn(&format!("{} {} 8080", python(), script.display()));
    server.wait_stderr("listening", Duration::from_secs(10));
    let sock = tmp.0.join("observer.sock").display().to_string();
    let unix = format!("unix://{sock}");
    let _agent = start_agent(
        &link.client,
        &format!("-i {} --listen {unix} -o none", link.client_if),
    );
    let code = link.client.exec(&format!(
        "curl -sS -o /dev/null -w %{{http_code}} --max-time 10 http://{SERVER_V4}:8080/slow"
    ));
    assert_eq!(code.trim(), "200");
    let flows = flows_until(&unix, "the exchange", |fs| {
        fs.iter().any(|f| f["l7"]["type"] == "RESPONSE")
    });
    let req = flows
        .iter()
        .find(|f| f["l7"]["type"] == "REQUEST" && url(f).ends_with("/slow"))
        .unwrap_or_else(|| panic!("no request flow: {flows:#?}"));
    let host = json!({"identity": 1, "labels": ["reserved:host"]});
    assert_eq!(req["source"], host, "{req}");
    assert_eq!(req["destination"], host, "{req}");
}
