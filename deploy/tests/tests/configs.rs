//! The files the manifests carry: the agent's TOML (keys the agent accepts, values in range),
//! the OpenTelemetry Collector's pipeline, and the image build.

use std::collections::BTreeSet;

use flowscope_deploy_tests::*;
use serde_json::Value;

fn agent_toml() -> String {
    let objects = render(&base_dir()).unwrap();
    let cm = find(&objects, "flowscope-agent-config", |o| match o {
        Object::ConfigMap(c) => Some(c),
        _ => None,
    });
    cm.data.as_ref().expect("data")["agent.toml"].clone()
}

#[test]
fn the_agent_config_key_list_is_read_from_the_agent_source() {
    let keys = agent_config_keys();
    // Guards the source reader itself: these keys exist today.
    for k in [
        "interfaces",
        "snaplen",
        "ring-size",
        "exclude-ports",
        "tc-attach",
        "include-own-ssh",
    ] {
        assert!(keys.contains(k), "{k} not found in AgentConfig: {keys:?}");
    }
    assert!(
        !keys.iter().any(|k| k.contains('_') || k.contains(' ')),
        "{keys:?}"
    );
}

#[test]
fn the_configmap_toml_uses_only_keys_the_agent_accepts() {
    let text = agent_toml();
    let table: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("agent.toml: {e}"));
    assert!(!table.is_empty());
    let accepted = agent_config_keys();
    let unknown: Vec<_> = table.keys().filter(|k| !accepted.contains(*k)).collect();
    assert!(
        unknown.is_empty(),
        "agent.toml keys the agent would reject: {unknown:?} (accepted: {accepted:?})"
    );
}

#[test]
fn the_configmap_toml_values_are_in_the_agents_ranges() {
    let table: toml::Table = toml::from_str(&agent_toml()).unwrap();
    if let Some(v) = table.get("snaplen") {
        let n = v.as_integer().expect("snaplen is an integer");
        assert!((1..=8000).contains(&n), "snaplen {n}");
    }
    if let Some(v) = table.get("ring-size") {
        let n = v.as_integer().expect("ring-size is an integer");
        assert!(n >= 4096 && n <= i64::from(u32::MAX), "ring-size {n}");
    }
    for (key, allowed) in [
        ("capture", &["tc", "socket", "afpacket"][..]),
        ("tc-attach", &["auto", "tcx", "clsact"][..]),
        ("output", &["compact", "dict", "json", "jsonpb", "none"][..]),
    ] {
        if let Some(v) = table.get(key) {
            let s = v.as_str().unwrap_or_else(|| panic!("{key} is a string"));
            assert!(
                allowed.contains(&s),
                "{key} = {s:?}, not one of {allowed:?}"
            );
        }
    }
    for key in ["ports", "exclude-ports"] {
        if let Some(v) = table.get(key) {
            for p in v.as_array().unwrap_or_else(|| panic!("{key} is a list")) {
                let p = p
                    .as_integer()
                    .unwrap_or_else(|| panic!("{key}: {p} is not a port"));
                assert!((1..=65535).contains(&p), "{key}: {p}");
            }
        }
    }
    // The agent's own listeners stay out of the capture.
    let excluded: BTreeSet<i64> = table["exclude-ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_integer())
        .collect();
    assert!(
        excluded.contains(&9965) && excluded.contains(&4244),
        "{excluded:?}"
    );
    assert_eq!(
        table.get("include-own-ssh").and_then(|v| v.as_bool()),
        Some(false)
    );
}

fn collector_config() -> Value {
    let text = read(&deploy_dir().join("otel-collector.yaml"));
    let docs = yaml_documents(&text).unwrap_or_else(|e| panic!("otel-collector.yaml: {e}"));
    let [doc] = docs.as_slice() else {
        panic!("otel-collector.yaml holds one document")
    };
    doc.clone()
}

#[test]
fn the_collector_receives_otlp_over_grpc_and_http_on_all_addresses() {
    let c = collector_config();
    let protocols = &c["receivers"]["otlp"]["protocols"];
    assert_eq!(protocols["grpc"]["endpoint"], "0.0.0.0:4317", "{protocols}");
    assert_eq!(protocols["http"]["endpoint"], "0.0.0.0:4318", "{protocols}");
}

#[test]
fn every_collector_pipeline_limits_memory_first_batches_and_exports_over_otlp() {
    let c = collector_config();
    let pipelines = c["service"]["pipelines"]
        .as_object()
        .expect("service.pipelines");
    assert!(pipelines.contains_key("traces"), "{pipelines:?}");
    for (name, p) in pipelines {
        let list = |k: &str| -> Vec<String> {
            p[k].as_array()
                .unwrap_or_else(|| panic!("pipeline {name}: no {k}"))
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        };
        let (receivers, processors, exporters) =
            (list("receivers"), list("processors"), list("exporters"));
        assert!(
            receivers.contains(&"otlp".to_string()),
            "{name}: {receivers:?}"
        );
        assert_eq!(
            processors.first().map(String::as_str),
            Some("memory_limiter"),
            "{name}: memory_limiter must come first"
        );
        assert!(
            processors.iter().any(|p| p == "batch"),
            "{name}: {processors:?}"
        );
        assert!(!exporters.is_empty(), "{name}");
        // Every component a pipeline names is defined.
        for (section, names) in [
            ("receivers", &receivers),
            ("processors", &processors),
            ("exporters", &exporters),
        ] {
            for n in names {
                assert!(
                    c[section].get(n).is_some(),
                    "{name}: {section}.{n} is not defined"
                );
            }
        }
        for e in &exporters {
            assert!(
                e == "otlp" || e.starts_with("otlp/"),
                "{name}: exporter {e} is not the OTLP exporter"
            );
            let endpoint = c["exporters"][e]["endpoint"].as_str().unwrap_or("");
            let (host, port) = endpoint
                .rsplit_once(':')
                .unwrap_or_else(|| panic!("{e}: endpoint {endpoint:?}"));
            assert!(
                !host.is_empty() && port.parse::<u16>().is_ok(),
                "{e}: endpoint {endpoint:?}"
            );
        }
    }
    let ml = &c["processors"]["memory_limiter"];
    assert!(
        ml.get("check_interval").is_some(),
        "memory_limiter needs check_interval: {ml}"
    );
    assert!(
        ml.get("limit_percentage").is_some() || ml.get("limit_mib").is_some(),
        "{ml}"
    );
    // Extensions in service.extensions are defined, and the probes ask health_check's port.
    for e in c["service"]["extensions"].as_array().into_iter().flatten() {
        assert!(
            c["extensions"].get(e.as_str().unwrap()).is_some(),
            "extension {e} undefined"
        );
    }
    assert_eq!(c["extensions"]["health_check"]["endpoint"], "0.0.0.0:13133");
}

#[test]
fn the_collector_deployment_uses_this_config_file() {
    let overlay = overlay_dir("otel-collector");
    // deploy/otel-collector.yaml and the overlay's copy are one file.
    assert_eq!(
        read(&deploy_dir().join("otel-collector.yaml")),
        read(&overlay.join("otel-collector.yaml")),
        "deploy/otel-collector.yaml must be the overlay's otel-collector.yaml"
    );
    let objects = render(&overlay).unwrap();
    let d = find(&objects, "otel-collector", |o| match o {
        Object::Deployment(d) => Some(d),
        _ => None,
    });
    let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let c = &pod.containers[0];
    let file = c
        .args
        .iter()
        .flatten()
        .find_map(|a| a.strip_prefix("--config="))
        .expect("--config=");
    let (dir, key) = file.rsplit_once('/').unwrap();
    let mount = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == dir)
        .expect("config mount");
    let vol = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .unwrap();
    let cm = find(
        &objects,
        &vol.config_map.as_ref().unwrap().name,
        |o| match o {
            Object::ConfigMap(c) => Some(c),
            _ => None,
        },
    );
    assert_eq!(
        cm.data.as_ref().unwrap()[key],
        read(&deploy_dir().join("otel-collector.yaml"))
    );
    let ports: BTreeSet<i32> = c.ports.iter().flatten().map(|p| p.container_port).collect();
    assert_eq!(ports, BTreeSet::from([4317, 4318, 13133]));
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert!(
        c.resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .is_some_and(|l| l.contains_key("memory")),
        "memory_limiter's percentages need a memory limit"
    );
}

#[test]
fn the_image_builds_the_agent_from_source_on_debian_12() {
    let df = read(&deploy_dir().join("Dockerfile"));
    let froms: Vec<&str> = df
        .lines()
        .filter_map(|l| l.strip_prefix("FROM "))
        .map(str::trim)
        .collect();
    assert_eq!(froms, ["rust:1-bookworm AS build", "debian:bookworm-slim"]);
    assert!(df.contains("cargo build --release --locked -p flowscope"));
    for pkg in ["clang-19", "llvm-19", "libbpf-dev", "linux-libc-dev"] {
        assert!(df.contains(pkg), "builder installs {pkg}");
    }
    assert!(df.contains("ENTRYPOINT [\"/usr/bin/flowscope\"]"));
    assert!(df.contains("COPY --from=build /out/flowscope /usr/bin/flowscope"));
    // The DaemonSet's image is the one build-image.sh tags by default.
    let objects = render(&base_dir()).unwrap();
    let ds = find(&objects, "flowscope-agent", |o| match o {
        Object::DaemonSet(d) => Some(d),
        _ => None,
    });
    let image = ds
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .image
        .clone()
        .unwrap();
    let root = read(&repo_root().join("Cargo.toml"));
    let version = root
        .split("[workspace.package]")
        .nth(1)
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("version = ")))
        .map(|v| v.trim_matches('"').to_string())
        .expect("workspace version");
    assert_eq!(image, format!("flowscope:{version}"));
    let script = read(&deploy_dir().join("build-image.sh"));
    assert!(script.contains("-f deploy/Dockerfile"));
}
