//! End-to-end test of `flowscope ui`: the real agent in a namespace with nginx, curl from
//! another namespace, `flowscope ui` reading the agent's socket, and its page driven by
//! Playwright (tests/ui/ui.mjs, playwright-core from ui/node_modules) in Debian's headless
//! Chromium. The map must show curl -> nginx with the right request count and status mix, a
//! click on the edge must narrow the table, a filter typed in the box must change it, a new
//! request must appear live; the map's screenshot goes to target/ui-test/map.png.

use std::{path::Path, time::Duration};

use flowscope_e2e::*;

const CHROMIUM: &str = "/usr/bin/chromium";

#[test]
fn the_page_shows_the_map_and_a_live_filtered_flow_table() {
    require_root();
    require_tool("node");
    require_tool("curl");
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: run ./dev.sh test, which installs Debian's chromium"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let node_modules = root.join("ui/node_modules");
    assert!(
        node_modules.join("playwright-core").exists(),
        "{} has no playwright-core: run ./dev.sh test (npm ci in ui/)",
        node_modules.display()
    );
    let out = root.join("target/ui-test");
    let _ = std::fs::remove_dir_all(&out);

    let link = Link::new();
    let tmp = TempDir::new();
    for page in ["page.txt", "other.txt", "live.txt"] {
        std::fs::write(tmp.0.join(page), "flowscope\n").unwrap();
    }
    let sock = tmp.0.join("run/observer.sock").display().to_string();
    let _nginx = start_nginx(&link.server, &tmp.0);
    let _agent = start_agent(
        &link.server,
        &format!("-i {} --listen unix://{sock}", link.server_if),
    );
    // One curl process, four requests on one connection: three found, one not.
    let base = format!("http://{SERVER_V4}");
    let codes = link.client.exec(&format!(
        "curl -sS --max-time 10 -o /dev/null -o /dev/null -o /dev/null -o /dev/null -w '%{{http_code}} ' \
         {base}/page.txt {base}/page.txt {base}/page.txt {base}/missing.txt"
    ));
    assert_eq!(codes.trim(), "200 200 200 404");
    // Another curl process: another edge into nginx.
    link.client.exec(&format!(
        "curl -sS --max-time 10 -o /dev/null {base}/other.txt"
    ));

    // The UI in the server's namespace: its loopback is the test's own.
    let mut ui = link.server.spawn(&format!(
        "{} ui --server unix://{sock} --listen 127.0.0.1:9966",
        flowscope_bin().display()
    ));
    ui.wait_stderr("open http://127.0.0.1:9966/", Duration::from_secs(10));

    let expect = serde_json::json!({
        "client": "curl",
        "server": "nginx",
        "requests": 4,
        "statuses": { "2xx": 3, "4xx": 1 },
        "status_filter": "--http-status 404",
        "status_code": 404,
        "live_filter": "--http-path ^/live",
        "live_path": "/live.txt",
    });
    let live = format!(
        "{}curl -sS --max-time 10 -o /dev/null {base}/live.txt",
        link.client.prefix()
    );
    let run = std::process::Command::new("timeout")
        .arg("120")
        .arg("ip")
        .args(["netns", "exec", &link.server.name, "node"])
        .arg(root.join("tests/ui/ui.mjs"))
        .env("UI_URL", "http://127.0.0.1:9966/")
        .env("UI_OUT", &out)
        .env("UI_NODE_MODULES", &node_modules)
        .env("LIVE_REQUEST", live)
        .env("EXPECT", expect.to_string())
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success() && out.join("done").exists(),
        "the page test failed ({}):\n{stdout}\n{stderr}\nflowscope ui's stderr:\n{}",
        run.status,
        ui.stderr().join("\n")
    );
    eprintln!("{stdout}");
    let png = std::fs::read(out.join("map.png")).expect("map.png written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 5_000,
        "map.png is no picture"
    );
}

#[test]
fn ui_without_an_agent_serves_the_page_and_says_why_the_map_is_empty() {
    require_root();
    let ns = Netns::new("fsu");
    let mut ui = ns.spawn(&format!(
        "{} ui --server unix:///nonexistent/flowscope/observer.sock --listen 127.0.0.1:9966",
        flowscope_bin().display()
    ));
    ui.wait_stderr("open http://127.0.0.1:9966/", Duration::from_secs(10));
    ui.wait_stderr("No such file or directory", Duration::from_secs(10));
    require_tool("curl");
    let map = ns.exec("curl -sS --max-time 5 http://127.0.0.1:9966/api/map");
    assert!(
        map.contains("cannot reach the flowscope agent") && map.contains("\"nodes\":[]"),
        "{map}"
    );
    let page = ns.exec("curl -sS --max-time 5 http://127.0.0.1:9966/");
    assert!(page.contains("<script src=\"app.js\">"), "{page}");
}
