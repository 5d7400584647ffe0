//! Reads what is under `deploy/` the way a cluster would: Kustomize files, Kubernetes objects
//! typed by `k8s-openapi` (one API version: 1.33), JSON patches, and the config files the
//! manifests carry. The tests in `tests/` use it to check the manifests say what the README
//! says. Kustomize itself is not needed: [`render`] does the small part of it we use
//! (resources, configMapGenerator, RFC 6902 patches) and rejects everything else by name.

use std::{
    collections::BTreeSet,
    fmt,
    path::{Path, PathBuf},
};

use k8s_openapi::{
    api::{
        apps::v1::{DaemonSet, Deployment},
        core::v1::{ConfigMap, Namespace, Service, ServiceAccount},
        rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding},
    },
    Resource,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::Value;

/// The `deploy/` folder.
pub fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("deploy/tests has a parent")
        .to_path_buf()
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    deploy_dir()
        .parent()
        .expect("deploy/ has a parent")
        .to_path_buf()
}

/// `deploy/kubernetes`.
pub fn kubernetes_dir() -> PathBuf {
    deploy_dir().join("kubernetes")
}

/// Reads a file, panicking with its path.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A parse or render failure, naming the file and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployError(pub String);

impl fmt::Display for DeployError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DeployError {}

fn err<T>(msg: impl Into<String>) -> Result<T, DeployError> {
    Err(DeployError(msg.into()))
}

/// One Kubernetes object of a kind these manifests may use. Any other kind is an error: the
/// manifests need no CRDs, and a kind we don't type is a kind we can't check.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Namespace(Namespace),
    ServiceAccount(ServiceAccount),
    ClusterRole(ClusterRole),
    ClusterRoleBinding(ClusterRoleBinding),
    Role(Role),
    RoleBinding(RoleBinding),
    ConfigMap(ConfigMap),
    Service(Service),
    DaemonSet(DaemonSet),
    Deployment(Deployment),
}

macro_rules! kinds {
    ($($kind:ident),* $(,)?) => {
        /// The kinds [`Object`] types, as `apiVersion`, `kind`.
        pub const KNOWN_KINDS: &[(&str, &str)] = &[$((<$kind as Resource>::API_VERSION, <$kind as Resource>::KIND)),*];

        impl Object {
            /// Types one object given as JSON, by its `apiVersion` and `kind`.
            pub fn from_value(value: Value) -> Result<Self, DeployError> {
                let api_version = value.get("apiVersion").and_then(Value::as_str).unwrap_or("").to_string();
                let kind = value.get("kind").and_then(Value::as_str).unwrap_or("").to_string();
                $(
                    if api_version == <$kind as Resource>::API_VERSION && kind == <$kind as Resource>::KIND {
                        return typed::<$kind>(value).map(Object::$kind);
                    }
                )*
                err(format!(
                    "unknown kind `{kind}` (apiVersion `{api_version}`): these manifests may only use {:?}",
                    KNOWN_KINDS
                ))
            }

            /// The object as JSON, as the API server would get it.
            pub fn to_value(&self) -> Value {
                match self {
                    $(Object::$kind(o) => serde_json::to_value(o).expect("k8s-openapi objects serialise"),)*
                }
            }

            /// `kind`.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Object::$kind(_) => <$kind as Resource>::KIND,)*
                }
            }

            /// Whether objects of this kind live in a namespace.
            pub fn is_namespaced(&self) -> bool {
                match self {
                    $(Object::$kind(_) => std::any::type_name::<<$kind as Resource>::Scope>()
                        .ends_with("NamespaceResourceScope"),)*
                }
            }
        }
    };
}

kinds!(
    Namespace,
    ServiceAccount,
    ClusterRole,
    ClusterRoleBinding,
    Role,
    RoleBinding,
    ConfigMap,
    Service,
    DaemonSet,
    Deployment,
);

impl Object {
    /// `metadata.name` (empty when missing).
    pub fn name(&self) -> String {
        self.meta_str("name")
    }

    /// `metadata.namespace` (empty when missing).
    pub fn namespace(&self) -> String {
        self.meta_str("namespace")
    }

    fn meta_str(&self, key: &str) -> String {
        self.to_value()["metadata"][key]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// "Kind/name", for messages.
    pub fn id(&self) -> String {
        format!("{}/{}", self.kind(), self.name())
    }
}

/// Deserialises one object into `T` and checks nothing was dropped on the way: k8s-openapi
/// ignores fields it doesn't know, so a misspelt `readOnlyRootFileSystem` would otherwise pass
/// silently while the cluster also ignores it. Serialising back must give the input again.
fn typed<T: DeserializeOwned + Serialize>(value: Value) -> Result<T, DeployError> {
    let obj: T = serde_json::from_value(value.clone()).map_err(|e| {
        DeployError(format!(
            "{} {:?}: {e}",
            value["kind"].as_str().unwrap_or("?"),
            value["metadata"]["name"].as_str().unwrap_or("?")
        ))
    })?;
    let back = serde_json::to_value(&obj).expect("k8s-openapi objects serialise");
    if let Some(diff) = first_difference(&value, &back, String::new()) {
        return err(format!(
            "{} {:?}: field not understood by Kubernetes 1.33 (misspelt, misplaced or of the wrong type): {diff}",
            value["kind"].as_str().unwrap_or("?"),
            value["metadata"]["name"].as_str().unwrap_or("?")
        ));
    }
    Ok(obj)
}

/// The first place where `a` (what was written) and `b` (what the type kept) differ.
pub fn first_difference(a: &Value, b: &Value, at: String) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                match y.get(k) {
                    Some(vb) => {
                        if let Some(d) = first_difference(va, vb, format!("{at}.{k}")) {
                            return Some(d);
                        }
                    }
                    None => return Some(format!("{at}.{k} = {va} was dropped")),
                }
            }
            y.keys()
                .find(|k| !x.contains_key(*k))
                .map(|k| format!("{at}.{k} appeared"))
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (va, vb))| first_difference(va, vb, format!("{at}[{i}]"))),
        _ if a == b => None,
        // YAML `1` for an int-or-string field comes back as 1, `"1"` as "1": both equal above.
        _ => Some(format!("{at}: wrote {a}, kept {b}")),
    }
}

/// Every YAML document in `text` (`---`-separated), as JSON values; empty documents skipped.
pub fn yaml_documents(text: &str) -> Result<Vec<Value>, DeployError> {
    let mut out = Vec::new();
    for (i, doc) in serde_norway::Deserializer::from_str(text).enumerate() {
        let v =
            Value::deserialize(doc).map_err(|e| DeployError(format!("document {}: {e}", i + 1)))?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}

/// Every object in a (multi-document) manifest file's text.
pub fn parse_objects(text: &str) -> Result<Vec<Object>, DeployError> {
    yaml_documents(text)?
        .into_iter()
        .map(Object::from_value)
        .collect()
}

/// Every object in a manifest file, errors naming the file.
pub fn parse_object_file(path: &Path) -> Result<Vec<Object>, DeployError> {
    parse_objects(&read(path)).map_err(|e| DeployError(format!("{}: {e}", path.display())))
}

/// A `kustomization.yaml`, with only the fields these manifests use: any other field (say the
/// deprecated `patchesStrategicMerge`) fails to parse, so no file reference goes unchecked.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Kustomization {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: Vec<LabelSet>,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub config_map_generator: Vec<ConfigMapGenerator>,
    #[serde(default)]
    pub patches: Vec<Patch>,
}

/// One entry of `labels:` (added to every object's metadata).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSet {
    pub pairs: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub include_selectors: bool,
}

/// One entry of `configMapGenerator:` (files only).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigMapGenerator {
    pub name: String,
    pub files: Vec<String>,
}

/// One entry of `patches:`: a file of RFC 6902 operations and the object it applies to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patch {
    pub path: String,
    pub target: PatchTarget,
}

/// Which object a patch applies to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchTarget {
    #[serde(default)]
    pub group: String,
    pub version: String,
    pub kind: String,
    pub name: String,
}

/// A kustomization file read from its folder.
#[derive(Debug, Clone)]
pub struct KustomizationDir {
    pub dir: PathBuf,
    pub k: Kustomization,
}

impl KustomizationDir {
    /// Reads `dir/kustomization.yaml`.
    pub fn load(dir: &Path) -> Result<Self, DeployError> {
        let path = dir.join("kustomization.yaml");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| DeployError(format!("{}: {e}", path.display())))?;
        let k: Kustomization = serde_norway::from_str(&text)
            .map_err(|e| DeployError(format!("{}: {e}", path.display())))?;
        if k.api_version != "kustomize.config.k8s.io/v1beta1" || k.kind != "Kustomization" {
            return err(format!(
                "{}: apiVersion/kind are {}/{}, not kustomize.config.k8s.io/v1beta1/Kustomization",
                path.display(),
                k.api_version,
                k.kind
            ));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            k,
        })
    }

    /// Every path this kustomization names, resolved against its folder, and whether each is a
    /// folder (another kustomization) or a file.
    pub fn referenced_paths(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self.k.resources.iter().map(|r| self.dir.join(r)).collect();
        v.extend(self.k.patches.iter().map(|p| self.dir.join(&p.path)));
        v.extend(
            self.k
                .config_map_generator
                .iter()
                .flat_map(|g| g.files.iter().map(|f| self.dir.join(f))),
        );
        v
    }
}

/// Every folder under `deploy/kubernetes` holding a `kustomization.yaml`, sorted.
pub fn kustomization_dirs() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![kubernetes_dir()];
    while let Some(d) = stack.pop() {
        if d.join("kustomization.yaml").is_file() {
            out.push(d.clone());
        }
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Every YAML file under `deploy/kubernetes`, sorted.
pub fn yaml_files() -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![kubernetes_dir()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml")) {
                out.insert(p);
            }
        }
    }
    out
}

/// What `kubectl kustomize DIR` would produce, for the features [`Kustomization`] admits:
/// resources (files and folders), configMapGenerator (names without the content hash) and
/// RFC 6902 patches. Every patch must match exactly one object. `labels` are not applied (they
/// only add metadata).
pub fn render(dir: &Path) -> Result<Vec<Object>, DeployError> {
    let kd = KustomizationDir::load(dir)?;
    let mut objects = Vec::new();
    for r in &kd.k.resources {
        let p = dir.join(r);
        if p.is_dir() {
            objects.extend(render(&p)?);
        } else if p.is_file() {
            objects.extend(parse_object_file(&p)?);
        } else {
            return err(format!("{}: resource {r} does not exist", dir.display()));
        }
    }
    for g in &kd.k.config_map_generator {
        let mut data = std::collections::BTreeMap::new();
        for f in &g.files {
            let name = Path::new(f)
                .file_name()
                .and_then(|n| n.to_str())
                .expect("generator file has a name")
                .to_string();
            let p = dir.join(f);
            let text = std::fs::read_to_string(&p).map_err(|e| {
                DeployError(format!(
                    "{}: configMapGenerator {}: {e}",
                    dir.display(),
                    p.display()
                ))
            })?;
            data.insert(name, text);
        }
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some(g.name.clone());
        cm.metadata.namespace = kd.k.namespace.clone();
        cm.data = Some(data);
        objects.push(Object::ConfigMap(cm));
    }
    for patch in &kd.k.patches {
        let p = dir.join(&patch.path);
        let docs =
            yaml_documents(&read(&p)).map_err(|e| DeployError(format!("{}: {e}", p.display())))?;
        let [ops] = docs.as_slice() else {
            return err(format!(
                "{}: a patch file holds one list of operations",
                p.display()
            ));
        };
        let ops: json_patch::Patch = serde_json::from_value(ops.clone()).map_err(|e| {
            DeployError(format!(
                "{}: not an RFC 6902 JSON patch (strategic-merge patches are not used here): {e}",
                p.display()
            ))
        })?;
        let t = &patch.target;
        let api_version = if t.group.is_empty() {
            t.version.clone()
        } else {
            format!("{}/{}", t.group, t.version)
        };
        let matching: Vec<usize> = objects
            .iter()
            .enumerate()
            .filter(|(_, o)| {
                let v = o.to_value();
                v["apiVersion"] == api_version.as_str() && o.kind() == t.kind && o.name() == t.name
            })
            .map(|(i, _)| i)
            .collect();
        let [i] = matching.as_slice() else {
            return err(format!(
                "{}: target {api_version} {}/{} matches {} objects, not one",
                p.display(),
                t.kind,
                t.name,
                matching.len()
            ));
        };
        let mut v = objects[*i].to_value();
        json_patch::patch(&mut v, &ops).map_err(|e| {
            DeployError(format!(
                "{}: does not apply to {}: {e}",
                p.display(),
                objects[*i].id()
            ))
        })?;
        objects[*i] = Object::from_value(v)
            .map_err(|e| DeployError(format!("{} after {}: {e}", objects[*i].id(), p.display())))?;
    }
    Ok(objects)
}

/// The one object of type `T` named `name` among `objects`.
pub fn find<'a, T>(
    objects: &'a [Object],
    name: &str,
    pick: impl Fn(&'a Object) -> Option<&'a T>,
) -> &'a T {
    let found: Vec<&T> = objects
        .iter()
        .filter(|o| o.name() == name)
        .filter_map(pick)
        .collect();
    match found.as_slice() {
        [one] => one,
        other => panic!(
            "expected one object named {name:?} of that kind, found {}",
            other.len()
        ),
    }
}

/// The folder of the base and of each overlay.
pub fn base_dir() -> PathBuf {
    kubernetes_dir().join("base")
}

/// `deploy/kubernetes/overlays/NAME`.
pub fn overlay_dir(name: &str) -> PathBuf {
    kubernetes_dir().join("overlays").join(name)
}

/// The folder of every overlay, sorted.
pub fn overlay_dirs() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(kubernetes_dir().join("overlays"))
        .expect("deploy/kubernetes/overlays exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

/// The keys `flowscope agent --config` accepts: the fields of `AgentConfig` in
/// observer/src/config.rs, in kebab-case (the struct is `rename_all = "kebab-case"`). Read
/// from the source so this list follows the agent without edits here.
pub fn agent_config_keys() -> BTreeSet<String> {
    let path = repo_root().join("observer/src/config.rs");
    let src = read(&path);
    let start = src
        .find("pub struct AgentConfig {")
        .unwrap_or_else(|| panic!("{}: no `pub struct AgentConfig {{`", path.display()));
    let body = &src[start..];
    let body = &body[..body.find("\n}").expect("struct AgentConfig ends")];
    assert!(
        src[..start].contains("rename_all = \"kebab-case\""),
        "{}: AgentConfig is no longer kebab-case; update agent_config_keys()",
        path.display()
    );
    body.lines()
        .skip(1)
        .filter_map(|l| l.trim().strip_prefix("pub "))
        .filter_map(|l| {
            l.split_once(':')
                .map(|(name, _)| name.trim().replace('_', "-"))
        })
        .collect()
}

/// Capabilities named in a Markdown table's first column as `` `CAP_X` ``, within the section
/// headed `heading` (up to the next heading of the same or higher level), without `CAP_`.
pub fn documented_capabilities(markdown: &str, heading: &str) -> Vec<String> {
    let start = markdown
        .lines()
        .position(|l| l.trim() == heading)
        .unwrap_or_else(|| panic!("no heading {heading:?}"));
    let level = heading.chars().take_while(|c| *c == '#').count();
    markdown
        .lines()
        .skip(start + 1)
        .take_while(|l| {
            let hashes = l.chars().take_while(|c| *c == '#').count();
            !(hashes > 0 && hashes <= level && l.chars().nth(hashes) == Some(' '))
        })
        .filter_map(|l| l.trim().strip_prefix("| `CAP_"))
        .filter_map(|l| l.split_once('`').map(|(name, _)| name.to_string()))
        .collect()
}
