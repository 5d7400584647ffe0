//! Test support for flowscope's end-to-end tests: network namespaces and veth pairs that clean
//! up on drop (and on panic), the agent and real servers launched inside them, and checks that
//! nothing of ours stays attached to the kernel.
//!
//! Every helper fails loudly when a requirement (root, a tool, a kernel feature) is missing:
//! these tests never skip.

pub mod attribution_support;

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{
        atomic::{AtomicU32, Ordering},
        mpsc, Arc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

/// Panics unless we run as root: these tests create namespaces and load eBPF.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "end-to-end tests need root (namespaces, eBPF); run `sudo ./dev.sh test`"
    );
}

/// Panics unless `tool` is on PATH.
pub fn require_tool(tool: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success());
    assert!(
        matches!(ok, Ok(true)),
        "{tool} is not installed: run ./dev.sh test, which installs it"
    );
}

/// Runs a command and panics with its output if it fails.
pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("spawn sh");
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command and returns its output whatever the status.
pub fn sh_any(cmd: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("spawn sh")
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A unique short name (interface names are limited to 15 bytes).
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}{}",
        std::process::id() % 10_000,
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// A network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    /// Its name under /run/netns.
    pub name: String,
}

impl Netns {
    /// Creates a namespace with loopback up.
    pub fn new(prefix: &str) -> Self {
        let name = unique(prefix);
        sh(&format!("ip netns add {name}"));
        let ns = Netns { name };
        ns.exec("ip link set lo up");
        ns
    }

    /// The `ip netns exec` prefix for a command in this namespace.
    pub fn prefix(&self) -> String {
        format!("ip netns exec {} ", self.name)
    }

    /// Runs a shell command inside the namespace; panics on failure.
    pub fn exec(&self, cmd: &str) -> String {
        sh(&format!(
            "ip netns exec {} sh -c '{}'",
            self.name,
            cmd.replace('\'', r"'\''")
        ))
    }

    /// Runs a shell command inside the namespace, whatever its status.
    pub fn exec_any(&self, cmd: &str) -> Output {
        sh_any(&format!(
            "ip netns exec {} sh -c '{}'",
            self.name,
            cmd.replace('\'', r"'\''")
        ))
    }

    /// Waits (up to 10 s) until a TCP socket in the namespace listens on `port`; panics naming
    /// `what` when none does.
    pub fn wait_listening(&self, port: u16, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self
            .exec_any(&format!("ss -ltn | grep -q \":{port} \""))
            .status
            .success()
        {
            assert!(
                Instant::now() < deadline,
                "{what} did not listen on :{port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts a long-running process inside the namespace, killed on drop of the guard.
    pub fn spawn(&self, cmd: &str) -> Proc {
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.name,
                "sh",
                "-c",
                &format!("exec {cmd}"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd}: {e}"));
        Proc::new(child, cmd)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Kill whatever is still inside, then remove it.
        let _ = sh_any(&format!("ip netns pids {} | xargs -r kill -9", self.name));
        let _ = sh_any(&format!("ip netns del {}", self.name));
    }
}

/// Two namespaces joined by a veth pair: `server` has 198.18.0.1 and 2001:db8::1, `client` has
/// 198.18.0.2 and 2001:db8::2 (RFC 2544 benchmarking and RFC 3849 documentation ranges).
#[derive(Debug)]
pub struct Link {
    /// Server side.
    pub server: Netns,
    /// Client side.
    pub client: Netns,
    /// Interface name in the server namespace.
    pub server_if: String,
    /// Interface name in the client namespace.
    pub client_if: String,
}

/// Server IPv4 address on a [`Link`].
pub const SERVER_V4: &str = "198.18.0.1";
/// Client IPv4 address on a [`Link`].
pub const CLIENT_V4: &str = "198.18.0.2";
/// Server IPv6 address on a [`Link`].
pub const SERVER_V6: &str = "2001:db8::1";
/// Client IPv6 address on a [`Link`].
pub const CLIENT_V6: &str = "2001:db8::2";

impl Link {
    /// Creates both namespaces and the veth pair, addressed and up.
    pub fn new() -> Self {
        let server = Netns::new("fss");
        let client = Netns::new("fsc");
        let server_if = unique("vs");
        let client_if = unique("vc");
        sh(&format!(
            "ip link add {server_if} netns {} type veth peer name {client_if} netns {}",
            server.name, client.name
        ));
        server.exec(&format!(
            "ip addr add {SERVER_V4}/24 dev {server_if} && ip -6 addr add {SERVER_V6}/64 dev {server_if} nodad && ip link set {server_if} up"
        ));
        client.exec(&format!(
            "ip addr add {CLIENT_V4}/24 dev {client_if} && ip -6 addr add {CLIENT_V6}/64 dev {client_if} nodad && ip link set {client_if} up"
        ));
        Link {
            server,
            client,
            server_if,
            client_if,
        }
    }
}

impl Default for Link {
    fn default() -> Self {
        Self::new()
    }
}

/// A child process with its stdout and stderr collected line by line; killed on drop.
#[derive(Debug)]
pub struct Proc {
    child: Option<Child>,
    what: String,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    stderr_rx: mpsc::Receiver<String>,
}

impl Proc {
    fn new(mut child: Child, what: &str) -> Self {
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, stderr_rx) = mpsc::channel();
        let out = child.stdout.take().expect("piped");
        let err = child.stderr.take().expect("piped");
        let so = stdout.clone();
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                so.lock().unwrap().push(line);
            }
        });
        let se = stderr.clone();
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                se.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        Proc {
            child: Some(child),
            what: what.to_string(),
            stdout,
            stderr,
            stderr_rx,
        }
    }

    /// Waits until a stderr line contains `needle`; panics with all of stderr on timeout or exit.
    pub fn wait_stderr(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .stderr_rx
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(l) if l.contains(needle) => return,
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(st) = self
                        .child
                        .as_mut()
                        .and_then(|c| c.try_wait().ok().flatten())
                    {
                        panic!(
                            "{} exited ({st}) before printing {needle:?}; stderr:\n{}",
                            self.what,
                            self.stderr().join("\n")
                        );
                    }
                    if Instant::now() >= deadline {
                        panic!(
                            "{} did not print {needle:?} in {timeout:?}; stderr:\n{}",
                            self.what,
                            self.stderr().join("\n")
                        );
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    thread::sleep(Duration::from_millis(100));
                    panic!(
                        "{} closed stderr before printing {needle:?}; stderr:\n{}",
                        self.what,
                        self.stderr().join("\n")
                    );
                }
            }
        }
    }

    /// Lines printed on stdout so far.
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Lines printed on stderr so far.
    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// The process id (of `ip netns exec`, which execs the command: the same process).
    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    /// Sends `sig` and waits for exit; returns the exit status code (None if killed by a signal).
    pub fn signal_and_wait(&mut self, sig: i32, timeout: Duration) -> Option<i32> {
        let mut child = self.child.take().expect("running");
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, sig) };
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = child.try_wait().expect("wait") {
                // Let the reader threads drain the pipes.
                thread::sleep(Duration::from_millis(200));
                return st.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} did not exit within {timeout:?} of signal {sig}; stderr:\n{}",
                    self.what,
                    self.stderr().join("\n")
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// How long a process left running at the end of a test gets to exit on SIGTERM (an agent
/// detaches its programs, a Python client removes its generated stubs) before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(3);

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child, which has not been waited for yet.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + TERM_GRACE;
            while Instant::now() < deadline {
                if matches!(c.try_wait(), Ok(Some(_)) | Err(_)) {
                    return;
                }
                thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The `flowscope` binary under test: $FLOWSCOPE_BIN, else target/debug/flowscope.
pub fn flowscope_bin() -> PathBuf {
    if let Ok(p) = std::env::var("FLOWSCOPE_BIN") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/flowscope");
    assert!(
        p.exists(),
        "{} is missing: build it first (cargo build -p flowscope; ./dev.sh test does)",
        p.display()
    );
    p.canonicalize().expect("canonical path")
}

/// Starts `flowscope agent ARGS` in `ns` and waits until it says it is capturing.
pub fn start_agent(ns: &Netns, args: &str) -> Proc {
    let mut p = ns.spawn(&format!("{} agent {args}", flowscope_bin().display()));
    p.wait_stderr("Ctrl-C to stop", Duration::from_secs(30));
    p
}

/// Ids of the BPF programs process `pid` holds (directly or through links), from the
/// `prog_id:` lines of its /proc/PID/fdinfo: exactly this agent's programs, whatever else
/// runs on the host.
pub fn bpf_prog_ids_of(pid: i32) -> Vec<u64> {
    let mut ids = Vec::new();
    let dir = format!("/proc/{pid}/fdinfo");
    for e in std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .flatten()
    {
        if let Ok(info) = std::fs::read_to_string(e.path()) {
            for l in info.lines() {
                if let Some(v) = l.strip_prefix("prog_id:") {
                    if let Ok(id) = v.trim().parse::<u64>() {
                        if !ids.contains(&id) {
                            ids.push(id);
                        }
                    }
                }
            }
        }
    }
    ids.sort_unstable();
    ids
}

/// bpftool's names of the loaded programs `ids`.
pub fn bpf_prog_names(ids: &[u64]) -> Vec<String> {
    let progs: serde_json::Value =
        serde_json::from_str(&sh("bpftool -j prog show")).expect("bpftool prog json");
    progs
        .as_array()
        .expect("array")
        .iter()
        .filter(|p| p["id"].as_u64().is_some_and(|id| ids.contains(&id)))
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect()
}

/// bpftool's names of the programs that have a link of their own (attached), e.g.
/// `fst_sock_recv`, among `ids` (all when `None`); a program run only by tail call has none.
pub fn linked_bpf_programs(ids: Option<&[u64]>) -> Vec<String> {
    let links: serde_json::Value =
        serde_json::from_str(&sh("bpftool -j link show")).expect("bpftool link json");
    let linked: Vec<u64> = links
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|l| l["prog_id"].as_u64())
        .filter(|id| ids.is_none_or(|ids| ids.contains(id)))
        .collect();
    bpf_prog_names(&linked)
}

/// Ids of every loaded BPF program, from bpftool.
pub fn loaded_bpf_prog_ids() -> Vec<u64> {
    let out = sh("bpftool -j prog show");
    let v: serde_json::Value = serde_json::from_str(&out).expect("bpftool json");
    v.as_array()
        .expect("array")
        .iter()
        .filter_map(|p| p.get("id").and_then(|n| n.as_u64()))
        .collect()
}

/// Waits (up to 5 s: program release is deferred in the kernel) until none of `ids` is loaded
/// any more; panics listing the survivors otherwise.
pub fn assert_bpf_released(ids: &[u64]) {
    assert!(
        !ids.is_empty(),
        "no BPF program ids recorded for the agent: nothing would be checked"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let loaded = loaded_bpf_prog_ids();
        let left: Vec<&u64> = ids.iter().filter(|i| loaded.contains(i)).collect();
        if left.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            panic!("BPF programs of the agent still loaded after it exited: ids {left:?}");
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Qdiscs and TC filters on `dev` in `ns`, as `tc` prints them.
pub fn tc_state(ns: &Netns, dev: &str) -> String {
    ns.exec(&format!(
        "tc qdisc show dev {dev}; tc filter show dev {dev} ingress 2>/dev/null; tc filter show dev {dev} egress 2>/dev/null"
    ))
}

/// Starts nginx in `ns` on port 80 (v4 and v6) serving `root`; returns the guard.
pub fn start_nginx(ns: &Netns, root: &Path) -> Proc {
    spawn_nginx(ns, root, "listen 80; listen [::]:80;", 80)
}

/// nginx (one worker, in the foreground) in `ns` serving `root`, with `server` in its server
/// block; returns once it listens on `port`.
fn spawn_nginx(ns: &Netns, root: &Path, server: &str, port: u16) -> Proc {
    require_tool("nginx");
    let dir = root.join("nginx");
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid; error_log stderr;\n\
             events {{ worker_connections 64; }}\n\
             http {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};\n\
               server {{ {server} root {r}; }} }}\n",
            d = dir.display(),
            r = root.display()
        ),
    )
    .unwrap();
    let p = ns.spawn(&format!("nginx -c {} -e stderr", conf.display()));
    ns.wait_listening(port, "nginx");
    p
}

/// A CA, and a certificate for the server's address signed by it (openssl CLI).
pub fn make_ca(dir: &Path) {
    require_tool("openssl");
    let d = dir.display();
    sh(&format!(
        "cd {d} && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=flowscope-test-ca 2>/dev/null \
         && openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN={SERVER_V4} 2>/dev/null \
         && printf 'subjectAltName=IP:{SERVER_V4}\\n' > san.ext \
         && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext 2>/dev/null"
    ));
}

/// nginx on 443 with TLS and HTTP/2 in `ns`, serving `root` with the certificate
/// [`make_ca`] left there; `/teapot` answers 418.
pub fn start_https_nginx(ns: &Netns, root: &Path) -> Proc {
    let r = root.display();
    let server = format!(
        "listen 443 ssl http2; ssl_certificate {r}/server.pem; ssl_certificate_key {r}/server.key;\n\
         location = /teapot {{ return 418; }}"
    );
    spawn_nginx(ns, root, &server, 443)
}

/// A scratch directory removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates /tmp/flowscope-test-<unique>.
    pub fn new() -> Self {
        let p = std::env::temp_dir().join(unique("flowscope-test-"));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `flowscope status -o json` of the agent listening on the unix socket `sock`.
pub fn agent_status(sock: &str) -> serde_json::Value {
    serde_json::from_str(&sh(&format!(
        "{} status --server unix://{sock} -o json",
        flowscope_bin().display()
    )))
    .expect("status -o json")
}

/// The agent's status once its counter `name` is at least `at_least`, or after 10 s (the
/// caller asserts on what it got). Engine counters reach status with the engines' periodic
/// snapshot, after the flows they count, so a test that just saw a flow waits here.
pub fn status_when(sock: &str, name: &str, at_least: u64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let st = agent_status(sock);
        let n = st["counters"][name].as_u64().unwrap_or(0);
        if n >= at_least || Instant::now() > deadline {
            return st;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Counter `name` of a status from [`agent_status`]; a missing counter fails the test.
pub fn status_counter(status: &serde_json::Value, name: &str) -> u64 {
    status["counters"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {name} in status: {status}"))
}

/// Parses JSON lines (skipping none: a line that isn't JSON is a test failure).
pub fn json_lines(lines: &[String]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("agent printed a non-JSON line {l:?}: {e}"))
        })
        .collect()
}

/// Reading Hubble's flow JSON (what `flowscope agent -o json` and `observe -o json` print).
pub mod flow {
    use serde_json::Value;

    /// Source address.
    pub fn src(f: &Value) -> &str {
        f["IP"]["source"].as_str().unwrap_or("")
    }
    /// Destination address.
    pub fn dst(f: &Value) -> &str {
        f["IP"]["destination"].as_str().unwrap_or("")
    }
    /// "TCP", "UDP", "ICMPv4", "ICMPv6" (the key of the `l4` oneof).
    pub fn protocol(f: &Value) -> String {
        f["l4"]
            .as_object()
            .and_then(|o| o.keys().next().cloned())
            .unwrap_or_default()
    }
    /// Source port (TCP/UDP), 0 otherwise.
    pub fn src_port(f: &Value) -> u64 {
        f["l4"]
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(|v| v["source_port"].as_u64())
            .unwrap_or(0)
    }
    /// Destination port (TCP/UDP), 0 otherwise.
    pub fn dst_port(f: &Value) -> u64 {
        f["l4"]
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(|v| v["destination_port"].as_u64())
            .unwrap_or(0)
    }
    /// TCP flags set on the packet, in Hubble's names.
    pub fn flags(f: &Value) -> Vec<String> {
        let mut v: Vec<String> = f["l4"]["TCP"]["flags"]
            .as_object()
            .map(|o| {
                o.iter()
                    .filter(|(_, b)| b.as_bool() == Some(true))
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
    /// Interface name.
    pub fn iface(f: &Value) -> &str {
        f["interface"]["name"].as_str().unwrap_or("")
    }
    /// "ingress" when the packet arrived on the interface (to-endpoint), "egress" when sent.
    pub fn packet_direction(f: &Value) -> &'static str {
        match f["trace_observation_point"].as_str() {
            Some("TO_ENDPOINT") => "ingress",
            Some("FROM_ENDPOINT") => "egress",
            _ => "unknown",
        }
    }
    /// Transport payload bytes of an L3/L4 flow (flowscope extension; 0 when absent).
    pub fn payload_bytes(f: &Value) -> u64 {
        f["extensions"]["payload_bytes"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .or_else(|| f["extensions"]["payload_bytes"].as_u64())
            .unwrap_or(0)
    }
    /// True for L7 flows.
    pub fn is_l7(f: &Value) -> bool {
        f["Type"] == "L7"
    }
}
