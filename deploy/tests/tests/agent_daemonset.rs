//! The agent DaemonSet's security settings, mounts, resources and probes, in the base and as
//! every overlay renders it (an overlay must not loosen what the base sets), plus RBAC.

use std::collections::BTreeMap;

use flowscope_deploy_tests::*;
use k8s_openapi::{
    api::{
        apps::v1::DaemonSet,
        core::v1::{Container, PodSpec, Probe},
    },
    apimachinery::pkg::{api::resource::Quantity, util::intstr::IntOrString},
};

/// The capabilities the agent adds back after dropping ALL, each explained beside it in
/// daemonset.yaml and in deploy/README.md's table.
const CAPABILITIES: &[&str] = &[
    "BPF",
    "PERFMON",
    "NET_ADMIN",
    "SYS_RESOURCE",
    "NET_RAW",
    "SYS_PTRACE",
    "DAC_READ_SEARCH",
];

fn agent(objects: &[Object]) -> (&PodSpec, &Container) {
    let ds: &DaemonSet = find(objects, "flowscope-agent", |o| match o {
        Object::DaemonSet(d) => Some(d),
        _ => None,
    });
    let spec = ds.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let [c] = spec.containers.as_slice() else {
        panic!("the agent pod has one container")
    };
    (spec, c)
}

/// The base, then each overlay, rendered.
fn every_rendering() -> Vec<(String, Vec<Object>)> {
    std::iter::once(base_dir())
        .chain(overlay_dirs())
        .map(|d| (d.display().to_string(), render(&d).unwrap()))
        .collect()
}

fn sorted(v: impl IntoIterator<Item = impl Into<String>>) -> Vec<String> {
    let mut v: Vec<String> = v.into_iter().map(Into::into).collect();
    v.sort();
    v
}

#[test]
fn the_agent_is_not_privileged_and_holds_exactly_the_documented_capabilities() {
    for (at, objects) in every_rendering() {
        let (pod, c) = agent(&objects);
        let sc = c
            .security_context
            .as_ref()
            .expect("container securityContext");
        assert_eq!(sc.privileged, Some(false), "{at}: privileged");
        assert_eq!(
            sc.allow_privilege_escalation,
            Some(false),
            "{at}: allowPrivilegeEscalation"
        );
        assert_eq!(
            sc.read_only_root_filesystem,
            Some(true),
            "{at}: readOnlyRootFilesystem"
        );
        let caps = sc.capabilities.as_ref().expect("capabilities");
        assert_eq!(
            caps.drop.as_deref(),
            Some(&["ALL".to_string()][..]),
            "{at}: drop"
        );
        let added = caps.add.clone().unwrap_or_default();
        assert_eq!(
            sorted(added.clone()),
            sorted(CAPABILITIES.iter().copied()),
            "{at}: add"
        );
        assert!(
            !added
                .iter()
                .any(|c| c == "SYS_ADMIN" || c == "CAP_SYS_ADMIN"),
            "{at}: SYS_ADMIN"
        );
        // bpf(2) is refused by some runtimes' default seccomp profile: see daemonset.yaml.
        assert_eq!(
            sc.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
            Some("Unconfined"),
            "{at}"
        );
        // uid 0 on purpose (no ambient capabilities in Kubernetes): see daemonset.yaml.
        assert_eq!(sc.run_as_user, Some(0), "{at}");
        // Nothing at pod level may hand the container more (a pod-level sysctl, say).
        if let Some(psc) = &pod.security_context {
            assert!(psc.sysctls.is_none(), "{at}: pod sysctls");
        }
        assert_eq!(pod.host_ipc, None, "{at}: hostIPC");
    }
}

#[test]
fn the_capability_list_is_the_one_the_readme_and_dockerfile_document() {
    let readme = read(&deploy_dir().join("README.md"));
    let documented = documented_capabilities(&readme, "### Capabilities");
    assert_eq!(
        sorted(documented),
        sorted(CAPABILITIES.iter().copied()),
        "deploy/README.md table"
    );

    let dockerfile = read(&deploy_dir().join("Dockerfile"));
    let docker_run: Vec<String> = dockerfile
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("--cap-add="))
        .map(str::to_string)
        .collect();
    assert_eq!(
        sorted(docker_run),
        sorted(CAPABILITIES.iter().copied()),
        "deploy/Dockerfile `docker run` example"
    );

    // Each capability has its reason written beside it in the manifest.
    let ds = read(&base_dir().join("daemonset.yaml"));
    for cap in CAPABILITIES {
        let line = ds
            .lines()
            .position(|l| l.trim() == format!("- {cap}"))
            .unwrap_or_else(|| panic!("daemonset.yaml: no `- {cap}` line"));
        let above = ds.lines().nth(line - 1).unwrap().trim();
        assert!(
            above.starts_with('#'),
            "daemonset.yaml: {cap} has no comment saying why"
        );
    }
}

#[test]
fn the_agent_shares_the_hosts_network_and_pid_namespaces_and_runs_on_every_node() {
    for (at, objects) in every_rendering() {
        let (pod, _) = agent(&objects);
        assert_eq!(pod.host_network, Some(true), "{at}: hostNetwork");
        assert_eq!(pod.host_pid, Some(true), "{at}: hostPID");
        assert_eq!(
            pod.dns_policy.as_deref(),
            Some("ClusterFirstWithHostNet"),
            "{at}: dnsPolicy"
        );
        assert_eq!(
            pod.priority_class_name.as_deref(),
            Some("system-node-critical"),
            "{at}"
        );
        let tolerations = pod.tolerations.clone().unwrap_or_default();
        assert!(
            tolerations
                .iter()
                .any(|t| t.operator.as_deref() == Some("Exists")
                    && t.key.is_none()
                    && t.effect.is_none()),
            "{at}: tolerates every taint: {tolerations:?}"
        );
        // The agent reads nothing from the API server (yet): no token in the pod.
        assert_eq!(pod.automount_service_account_token, Some(false), "{at}");
    }
}

#[test]
fn host_mounts_are_read_only_except_bpffs_and_the_run_directory() {
    // volume name -> (host path, mount path, read-only)
    let expected: BTreeMap<&str, (&str, &str, bool)> = BTreeMap::from([
        ("bpffs", ("/sys/fs/bpf", "/sys/fs/bpf", false)),
        ("btf", ("/sys/kernel/btf", "/sys/kernel/btf", true)),
        ("host-proc", ("/proc", "/host/proc", true)),
        ("cgroup", ("/sys/fs/cgroup", "/sys/fs/cgroup", true)),
        ("pods-log", ("/var/log/pods", "/var/log/pods", true)),
        (
            "tracefs",
            ("/sys/kernel/tracing", "/sys/kernel/tracing", true),
        ),
        ("run", ("/run/flowscope", "/var/run/flowscope", false)),
    ]);
    for (at, objects) in every_rendering() {
        let (pod, c) = agent(&objects);
        let host_paths: BTreeMap<String, String> = pod
            .volumes
            .iter()
            .flatten()
            .filter_map(|v| Some((v.name.clone(), v.host_path.as_ref()?.path.clone())))
            .collect();
        let want: BTreeMap<String, String> = expected
            .iter()
            .map(|(n, (h, _, _))| (n.to_string(), h.to_string()))
            .collect();
        assert_eq!(host_paths, want, "{at}: the hostPath volumes");
        for m in c.volume_mounts.iter().flatten() {
            let read_only = m.read_only.unwrap_or(false);
            if let Some((_, mount, ro)) = expected.get(m.name.as_str()) {
                assert_eq!(m.mount_path, *mount, "{at}: {} mount path", m.name);
                assert_eq!(read_only, *ro, "{at}: {} readOnly", m.name);
                assert_eq!(m.mount_propagation, None, "{at}: {} propagation", m.name);
            } else {
                assert!(
                    read_only,
                    "{at}: non-host mount {} must be read-only",
                    m.name
                );
            }
        }
    }
}

#[test]
fn resources_are_set_to_the_budget() {
    let q = |s: &str| Quantity(s.to_string());
    for (at, objects) in every_rendering() {
        let (_, c) = agent(&objects);
        let r = c.resources.as_ref().expect("resources");
        let requests = r.requests.clone().unwrap_or_default();
        let limits = r.limits.clone().unwrap_or_default();
        assert_eq!(requests.get("cpu"), Some(&q("50m")), "{at}");
        assert_eq!(requests.get("memory"), Some(&q("64Mi")), "{at}");
        assert_eq!(limits.get("cpu"), Some(&q("500m")), "{at}");
        assert_eq!(limits.get("memory"), Some(&q("256Mi")), "{at}");
    }
}

/// The container port a probe's httpGet port resolves to.
fn http_probe_port(c: &Container, p: &Probe) -> (String, i32) {
    let get = p.http_get.as_ref().expect("httpGet probe");
    let port = match &get.port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => {
            c.ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))
                .unwrap_or_else(|| panic!("probe names port {name}, which the container lacks"))
                .container_port
        }
    };
    (get.path.clone().unwrap_or_default(), port)
}

#[test]
fn probes_ask_the_metrics_endpoint_and_the_service_exposes_it() {
    for (at, objects) in every_rendering() {
        let (_, c) = agent(&objects);
        for (what, p) in [
            ("liveness", c.liveness_probe.as_ref()),
            ("readiness", c.readiness_probe.as_ref()),
            ("startup", c.startup_probe.as_ref()),
        ] {
            let p = p.unwrap_or_else(|| panic!("{at}: no {what} probe"));
            assert_eq!(
                http_probe_port(c, p),
                ("/metrics".to_string(), 9965),
                "{at}: {what}"
            );
        }
        assert!(
            c.args
                .iter()
                .flatten()
                .any(|a| a == "--metrics-listen=0.0.0.0:9965"),
            "{at}: metrics flag"
        );

        let svc = find(&objects, "flowscope-agent-metrics", |o| match o {
            Object::Service(s) => Some(s),
            _ => None,
        });
        let ann = svc.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(
            ann.get("prometheus.io/scrape").map(String::as_str),
            Some("true"),
            "{at}"
        );
        assert_eq!(
            ann.get("prometheus.io/port").map(String::as_str),
            Some("9965"),
            "{at}"
        );
        assert_eq!(
            ann.get("prometheus.io/path").map(String::as_str),
            Some("/metrics"),
            "{at}"
        );
        let spec = svc.spec.as_ref().unwrap();
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        let ports = spec.ports.clone().unwrap_or_default();
        assert!(
            ports
                .iter()
                .any(|p| p.name.as_deref() == Some("metrics") && p.port == 9965),
            "{at}: {ports:?}"
        );
    }
}

#[test]
fn the_agent_reads_its_config_file_from_the_configmap() {
    for (at, objects) in every_rendering() {
        let (pod, c) = agent(&objects);
        let args = c.args.clone().unwrap_or_default();
        assert_eq!(
            args.first().map(String::as_str),
            Some("agent"),
            "{at}: subcommand"
        );
        let file = args
            .iter()
            .find_map(|a| a.strip_prefix("--config="))
            .unwrap_or_else(|| panic!("{at}: no --config= in {args:?}"));
        let (dir, key) = file.rsplit_once('/').unwrap();
        let mount = c
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.mount_path == dir)
            .unwrap_or_else(|| panic!("{at}: nothing mounted at {dir}"));
        let vol = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == mount.name)
            .unwrap();
        let cm_name = &vol.config_map.as_ref().expect("a ConfigMap volume").name;
        let cm = find(&objects, cm_name, |o| match o {
            Object::ConfigMap(c) => Some(c),
            _ => None,
        });
        assert!(
            cm.data.as_ref().is_some_and(|d| d.contains_key(key)),
            "{at}: {cm_name} has no {key}"
        );
        assert!(
            c.env
                .iter()
                .flatten()
                .any(|e| e.name == "FLOWSCOPE_NODE_NAME"
                    && e.value_from
                        .as_ref()
                        .and_then(|v| v.field_ref.as_ref())
                        .map(|f| f.field_path.as_str())
                        == Some("spec.nodeName")),
            "{at}: node name from the downward API"
        );
    }
}

#[test]
fn rbac_grants_only_get_on_nodes() {
    let objects = render(&base_dir()).unwrap();
    let role = find(&objects, "flowscope-agent", |o| match o {
        Object::ClusterRole(r) => Some(r),
        _ => None,
    });
    let rules = role.rules.clone().unwrap_or_default();
    assert_eq!(rules.len(), 1, "{rules:?}");
    let r = &rules[0];
    assert_eq!(r.api_groups.as_deref(), Some(&[String::new()][..]));
    assert_eq!(r.resources.as_deref(), Some(&["nodes".to_string()][..]));
    assert_eq!(r.verbs, ["get"]);
    assert!(r.resource_names.is_none() && r.non_resource_urls.is_none());
    assert!(
        !objects
            .iter()
            .any(|o| matches!(o, Object::Role(_) | Object::RoleBinding(_))),
        "no namespaced roles"
    );
}

#[test]
fn the_otel_overlay_points_the_agent_at_its_collector_service() {
    let objects = render(&overlay_dir("otel-collector")).unwrap();
    let (_, c) = agent(&objects);
    let url = c
        .args
        .iter()
        .flatten()
        .find_map(|a| a.strip_prefix("--otlp-endpoint="))
        .expect("--otlp-endpoint=");
    assert_eq!(url, "http://otel-collector.flowscope:4317");
    let host_port = url.strip_prefix("http://").unwrap();
    let (host, port) = host_port.split_once(':').unwrap();
    let (svc_name, ns) = host.split_once('.').unwrap();
    let svc = find(&objects, svc_name, |o| match o {
        Object::Service(s) => Some(s),
        _ => None,
    });
    assert_eq!(svc.metadata.namespace.as_deref(), Some(ns));
    let port: i32 = port.parse().unwrap();
    assert!(svc
        .spec
        .as_ref()
        .unwrap()
        .ports
        .iter()
        .flatten()
        .any(|p| p.port == port));
    // The base doesn't export.
    let base_objects = render(&base_dir()).unwrap();
    let (_, base) = agent(&base_objects);
    assert!(!base
        .args
        .iter()
        .flatten()
        .any(|a| a.starts_with("--otlp-endpoint")));
}

#[test]
fn the_relay_overlay_serves_tcp_4244_and_relay_asks_the_peer_service() {
    let objects = render(&overlay_dir("hubble-relay")).unwrap();
    let (_, c) = agent(&objects);
    assert!(c
        .args
        .iter()
        .flatten()
        .any(|a| a == "--listen-tcp=0.0.0.0:4244"));
    // Over mTLS (the agent refuses --listen-tcp without TLS files or --disable-tls), from a
    // Secret volume (a subPath mount would never see a renewed Secret).
    let agent_files = [
        ("--tls-cert-file", "server.crt", "tls.crt"),
        ("--tls-key-file", "server.key", "tls.key"),
        ("--tls-client-ca-files", "client-ca.crt", "ca.crt"),
    ];
    for (flag, file, _) in agent_files {
        let want = format!("{flag}=/var/lib/flowscope/tls/{file}");
        assert!(c.args.iter().flatten().any(|a| *a == want), "{want}");
    }
    assert!(!c.args.iter().flatten().any(|a| a == "--disable-tls"));
    let mount = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == "tls")
        .expect("the agent's TLS mount");
    assert_eq!(mount.mount_path, "/var/lib/flowscope/tls");
    assert_eq!(
        (mount.read_only, mount.sub_path.as_ref()),
        (Some(true), None)
    );
    let (pod_spec, _) = agent(&objects);
    let secret = pod_spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "tls")
        .and_then(|v| v.secret.as_ref())
        .expect("the agent's TLS Secret volume");
    assert_eq!(secret.secret_name.as_deref(), Some("flowscope-agent-tls"));
    assert_eq!(secret.default_mode, Some(0o400));
    for (_, file, key) in agent_files {
        assert!(
            secret
                .items
                .iter()
                .flatten()
                .any(|i| i.key == key && i.path == file),
            "{key} -> {file}"
        );
    }
    // Every agent the headless Service resolves to is announced to Relay (peer.Peer/Notify),
    // at the node address from the downward API.
    assert!(c
        .args
        .iter()
        .flatten()
        .any(|a| a == "--peer-service=flowscope-peer.flowscope.svc.cluster.local:4244"));
    assert!(c.env.iter().flatten().any(|e| e.name == "FLOWSCOPE_NODE_IP"
        && e.value_from
            .as_ref()
            .and_then(|v| v.field_ref.as_ref())
            .is_some_and(|f| f.field_path == "status.hostIP")));
    assert!(c
        .ports
        .iter()
        .flatten()
        .any(|p| p.container_port == 4244 && p.name.as_deref() == Some("observer")));

    let peer = find(&objects, "flowscope-peer", |o| match o {
        Object::Service(s) => Some(s),
        _ => None,
    });
    let spec = peer.spec.as_ref().unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("None"), "headless");
    assert!(spec.ports.iter().flatten().any(|p| p.port == 4244));

    let cm = find(&objects, "hubble-relay-config", |o| match o {
        Object::ConfigMap(c) => Some(c),
        _ => None,
    });
    let config = &cm.data.as_ref().unwrap()["config.yaml"];
    let config: serde_json::Value = serde_norway::from_str(config).unwrap();
    let known = [
        "cluster-name",
        "peer-service",
        "listen-address",
        "dial-timeout",
        "retry-timeout",
        "sort-buffer-len-max",
        "sort-buffer-drain-timeout",
        "disable-client-tls",
        "disable-server-tls",
        "tls-client-cert-file",
        "tls-client-key-file",
        "tls-hubble-server-ca-files",
    ];
    for k in config.as_object().unwrap().keys() {
        assert!(
            known.contains(&k.as_str()),
            "hubble-relay config key {k} is not one relay reads"
        );
    }
    assert_eq!(
        config["peer-service"],
        "flowscope-peer.flowscope.svc.cluster.local:4244"
    );
    // Relay dials the agents over mTLS: its client certificate and the agents' CA, from the
    // Secret mounted where the config says.
    assert!(
        config.get("disable-client-tls").is_none(),
        "agents serve TLS on 4244"
    );
    let relay_files = [
        ("tls-client-cert-file", "client.crt", "tls.crt"),
        ("tls-client-key-file", "client.key", "tls.key"),
        (
            "tls-hubble-server-ca-files",
            "hubble-server-ca.crt",
            "ca.crt",
        ),
    ];
    for (key, file, _) in relay_files {
        assert_eq!(
            config[key],
            format!("/var/lib/hubble-relay/tls/{file}"),
            "{key}"
        );
    }

    let relay = find(&objects, "hubble-relay", |o| match o {
        Object::Deployment(d) => Some(d),
        _ => None,
    });
    let pod = relay.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let rc = &pod.containers[0];
    assert_eq!(rc.args.as_deref(), Some(&["serve".to_string()][..]));
    assert!(rc
        .volume_mounts
        .iter()
        .flatten()
        .any(|m| m.mount_path == "/etc/hubble-relay" && m.read_only == Some(true)));
    assert!(rc.volume_mounts.iter().flatten().any(|m| m.name == "tls"
        && m.mount_path == "/var/lib/hubble-relay/tls"
        && m.read_only == Some(true)));
    let tls = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "tls")
        .and_then(|v| v.secret.as_ref())
        .expect("Relay's TLS Secret volume");
    assert_eq!(
        tls.secret_name.as_deref(),
        Some("hubble-relay-client-certs")
    );
    for (_, file, key) in relay_files {
        assert!(
            tls.items
                .iter()
                .flatten()
                .any(|i| i.key == key && i.path == file),
            "{key} -> {file}"
        );
    }
    // Relay runs as 65532: the Secret's files must be readable by its group.
    assert_eq!(pod.security_context.as_ref().unwrap().fs_group, Some(65532));
    assert_eq!(tls.default_mode, Some(0o440));
    let sc = rc.security_context.as_ref().unwrap();
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        pod.security_context.as_ref().unwrap().run_as_non_root,
        Some(true)
    );
}
