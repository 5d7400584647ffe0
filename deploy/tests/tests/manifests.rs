//! Every manifest under deploy/kubernetes parses into typed Kubernetes objects, every
//! kustomization names only files that exist, and the base and each overlay render into a set
//! of objects whose references (Services -> pods, volumes -> ConfigMaps, bindings -> accounts)
//! all resolve.

use std::collections::BTreeSet;

use flowscope_deploy_tests::*;
use k8s_openapi::api::core::v1::PodTemplateSpec;

#[test]
fn every_yaml_file_is_used_by_a_kustomization_and_every_reference_exists() {
    let dirs = kustomization_dirs();
    assert!(
        dirs.contains(&base_dir())
            && dirs.contains(&overlay_dir("otel-collector"))
            && dirs.contains(&overlay_dir("hubble-relay")),
        "expected base and two overlays, found {dirs:?}"
    );
    let mut used = BTreeSet::new();
    for dir in &dirs {
        let kd = KustomizationDir::load(dir).unwrap();
        used.insert(dir.join("kustomization.yaml"));
        for p in kd.referenced_paths() {
            if p.is_dir() {
                assert!(
                    p.join("kustomization.yaml").is_file(),
                    "{}: folder {} has no kustomization.yaml",
                    dir.display(),
                    p.display()
                );
            } else {
                assert!(
                    p.is_file(),
                    "{}: names {}, which does not exist",
                    dir.display(),
                    p.display()
                );
                used.insert(p.canonicalize().unwrap());
            }
        }
    }
    let used: BTreeSet<_> = used.iter().map(|p| p.canonicalize().unwrap()).collect();
    let orphans: Vec<_> = yaml_files()
        .into_iter()
        .filter(|f| !used.contains(&f.canonicalize().unwrap()))
        .collect();
    assert!(
        orphans.is_empty(),
        "YAML files no kustomization uses (so nothing installs or checks them): {orphans:?}"
    );
}

#[test]
fn every_resource_file_parses_into_typed_objects_with_no_field_dropped() {
    let mut count = 0;
    for dir in kustomization_dirs() {
        let kd = KustomizationDir::load(&dir).unwrap();
        for r in &kd.k.resources {
            let p = dir.join(r);
            if p.is_file() {
                let objects = parse_object_file(&p).unwrap_or_else(|e| panic!("{e}"));
                assert!(!objects.is_empty(), "{} holds no object", p.display());
                count += objects.len();
            }
        }
    }
    // Namespace, ServiceAccount, ClusterRole, ClusterRoleBinding, ConfigMap, DaemonSet, Service;
    // collector Deployment + Service; peer Service; relay ConfigMap, ServiceAccount, Deployment,
    // Service.
    assert_eq!(count, 14, "objects across all resource files");
}

#[test]
fn unknown_kinds_are_rejected() {
    let e = parse_objects(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n\
         apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: b}\n",
    )
    .unwrap_err();
    assert!(e.0.contains("ServiceMonitor"), "{e}");
    // A known kind under the wrong apiVersion is unknown too.
    let e = parse_objects("apiVersion: extensions/v1beta1\nkind: DaemonSet\nmetadata: {name: a}\n")
        .unwrap_err();
    assert!(e.0.contains("DaemonSet"), "{e}");
}

#[test]
fn misspelt_or_misplaced_fields_are_rejected() {
    let ds = read(&base_dir().join("daemonset.yaml"));
    assert!(parse_objects(&ds).is_ok());
    let typo = ds.replace(
        "readOnlyRootFilesystem: true",
        "readOnlyRootFileSystem: true",
    );
    assert_ne!(typo, ds);
    let e = parse_objects(&typo).unwrap_err();
    assert!(e.0.contains("readOnlyRootFileSystem"), "{e}");
    let wrong_type = ds.replace("hostPID: true", "hostPID: \"yes\"");
    assert!(parse_objects(&wrong_type).is_err());
}

#[test]
fn base_and_overlays_render_and_keep_everything_in_the_flowscope_namespace() {
    for dir in std::iter::once(base_dir()).chain(overlay_dirs()) {
        let kd = KustomizationDir::load(&dir).unwrap();
        assert_eq!(
            kd.k.namespace.as_deref(),
            Some("flowscope"),
            "{}",
            dir.display()
        );
        let objects = render(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut ids = BTreeSet::new();
        for o in &objects {
            assert!(ids.insert(o.id()), "{}: {} twice", dir.display(), o.id());
            if o.is_namespaced() {
                assert_eq!(o.namespace(), "flowscope", "{}: {}", dir.display(), o.id());
            } else {
                assert_eq!(
                    o.namespace(),
                    "",
                    "{}: cluster-scoped {} has a namespace",
                    dir.display(),
                    o.id()
                );
            }
        }
        assert!(objects
            .iter()
            .any(|o| o.kind() == "Namespace" && o.name() == "flowscope"));
    }
}

/// Every pod template in a rendered set, with its owner's name.
fn pod_templates(objects: &[Object]) -> Vec<(String, &PodTemplateSpec)> {
    objects
        .iter()
        .filter_map(|o| match o {
            Object::DaemonSet(d) => Some((o.id(), &d.spec.as_ref()?.template)),
            Object::Deployment(d) => Some((o.id(), &d.spec.as_ref()?.template)),
            _ => None,
        })
        .collect()
}

#[test]
fn references_resolve_in_base_and_every_overlay() {
    for dir in std::iter::once(base_dir()).chain(overlay_dirs()) {
        let objects = render(&dir).unwrap();
        let here = dir.display();
        let has =
            |kind: &str, name: &str| objects.iter().any(|o| o.kind() == kind && o.name() == name);
        let templates = pod_templates(&objects);
        assert!(!templates.is_empty(), "{here}: no workload");

        for (owner, t) in &templates {
            // The workload's selector picks its own pods.
            let spec = t.spec.as_ref().unwrap();
            let labels = t
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            let selector = objects
                .iter()
                .find(|o| &o.id() == owner)
                .map(|o| o.to_value()["spec"]["selector"]["matchLabels"].clone())
                .unwrap();
            for (k, v) in selector.as_object().expect("matchLabels") {
                assert_eq!(
                    labels.get(k).map(String::as_str),
                    v.as_str(),
                    "{here}: {owner} selector {k}"
                );
            }
            if let Some(sa) = &spec.service_account_name {
                assert!(
                    has("ServiceAccount", sa),
                    "{here}: {owner} uses missing ServiceAccount {sa}"
                );
            }
            for vol in spec.volumes.iter().flatten() {
                if let Some(cm) = &vol.config_map {
                    assert!(
                        has("ConfigMap", &cm.name),
                        "{here}: {owner} mounts missing ConfigMap {}",
                        cm.name
                    );
                }
            }
            for c in &spec.containers {
                let mounts: BTreeSet<_> = c
                    .volume_mounts
                    .iter()
                    .flatten()
                    .map(|m| m.name.clone())
                    .collect();
                let vols: BTreeSet<_> = spec
                    .volumes
                    .iter()
                    .flatten()
                    .map(|v| v.name.clone())
                    .collect();
                assert_eq!(
                    mounts, vols,
                    "{here}: {owner}: every volume mounted, every mount a volume"
                );
            }
        }

        // Every Service selects some pods, and each target port names a port those pods have.
        for o in &objects {
            let Object::Service(svc) = o else { continue };
            let spec = svc.spec.as_ref().unwrap();
            let sel = spec.selector.clone().unwrap_or_default();
            assert!(!sel.is_empty(), "{here}: {} selects nothing", o.id());
            let pods: Vec<_> = templates
                .iter()
                .filter(|(_, t)| {
                    let l = t
                        .metadata
                        .as_ref()
                        .and_then(|m| m.labels.clone())
                        .unwrap_or_default();
                    sel.iter().all(|(k, v)| l.get(k) == Some(v))
                })
                .collect();
            assert!(
                !pods.is_empty(),
                "{here}: {} selects no workload's pods",
                o.id()
            );
            for port in spec.ports.iter().flatten() {
                let target = port.target_port.as_ref().expect("targetPort set");
                for (owner, t) in &pods {
                    let found = t
                        .spec
                        .as_ref()
                        .unwrap()
                        .containers
                        .iter()
                        .flat_map(|c| c.ports.iter().flatten())
                        .any(|p| match target {
                            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(
                                n,
                            ) => p.name.as_deref() == Some(n),
                            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => {
                                p.container_port == *n
                            }
                        });
                    assert!(
                        found,
                        "{here}: {} port {:?} -> {target:?}: no such port on {owner}",
                        o.id(),
                        port.name
                    );
                }
            }
        }

        // Bindings point at roles and accounts that exist.
        for o in &objects {
            let Object::ClusterRoleBinding(b) = o else {
                continue;
            };
            assert!(
                has(&b.role_ref.kind, &b.role_ref.name),
                "{here}: {} -> missing {}",
                o.id(),
                b.role_ref.name
            );
            for s in b.subjects.iter().flatten() {
                assert_eq!(s.kind, "ServiceAccount");
                assert_eq!(s.namespace.as_deref(), Some("flowscope"));
                assert!(
                    has("ServiceAccount", &s.name),
                    "{here}: {} -> missing account {}",
                    o.id(),
                    s.name
                );
            }
        }
    }
}

#[test]
fn render_rejects_a_patch_that_matches_nothing() {
    let tmp = std::env::temp_dir().join(format!("flowscope-deploy-test-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(
        tmp.join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {}\n\
             patches:\n  - path: p.yaml\n    target: {{group: apps, version: v1, kind: DaemonSet, name: nope}}\n",
            base_dir().display()
        ),
    )
    .unwrap();
    std::fs::write(
        tmp.join("p.yaml"),
        "- op: add\n  path: /spec/x\n  value: 1\n",
    )
    .unwrap();
    let e = render(&tmp).unwrap_err();
    std::fs::remove_dir_all(&tmp).unwrap();
    assert!(e.0.contains("matches 0 objects"), "{e}");
}
