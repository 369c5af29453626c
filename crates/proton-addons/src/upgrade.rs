//! K3s upgrades with K3s's own mechanism: Rancher's system-upgrade-controller, as an
//! add-on in K3s's auto-deploy directory, and the two Plans of the K3s docs' automated
//! upgrades (docs.k3s.io, upgrades/automated): a server plan for the control-plane node,
//! and an agent plan for every other node whose `prepare` step
//! (`rancher/k3s-upgrade prepare server-plan`) waits until the server plan has finished
//! and every control-plane kubelet runs the plan's version. So raising `k3s.version`
//! upgrades the server first, then the agents, and never leaves a kubelet newer than the
//! API server.
//!
//! The controller's objects are upstream's own files at a pinned release (verbatim under
//! `src/upstream/system-upgrade-controller-v0.20.1/`, see SOURCES.md there), turned into
//! the release asset the K3s docs install the way upstream's release script does
//! (`kustomize build` with the namespace and the image tag), plus Proton's managed-by label.

use crate::AddonsError;
use crate::files::{ManifestFile, to_yaml};
use crate::objects::{MANAGED_BY, Meta, Object};
use serde::Serialize;
use serde_json::Value;

/// The system-upgrade-controller release whose manifests are shipped.
pub const SYSTEM_UPGRADE_CONTROLLER_VERSION: &str = "v0.20.1";
/// The namespace of the controller and of its Plans (the Plans must be in the
/// controller's namespace: docs.k3s.io upgrades/automated).
pub const SYSTEM_UPGRADE_NAMESPACE: &str = "system-upgrade";
/// The ServiceAccount upstream's manifests bind to the controller's roles; the Plans run
/// their jobs as it.
pub const SYSTEM_UPGRADE_SERVICE_ACCOUNT: &str = "system-upgrade";
/// The image K3s publishes for these Plans (github.com/k3s-io/k3s-upgrade); the controller
/// tags it with the plan's version, `+` made `-` (pkg/upgrade/plan/plan.go `MungeVersion`).
pub const K3S_UPGRADE_IMAGE: &str = "rancher/k3s-upgrade";
pub const SERVER_PLAN: &str = "server-plan";
pub const AGENT_PLAN: &str = "agent-plan";
/// K3s labels its servers `node-role.kubernetes.io/control-plane=true`.
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";

/// The files, in apply order, beside [`crate::FILE_NAMES`]. The Plans are in their own
/// file: K3s applies a file as a whole and retries it until it succeeds, so the Plans
/// wait for the CRD and the namespace of the first without holding them back. Never
/// drop a name (K3s keeps a deleted file's objects); off, each is left with no objects.
pub const UPGRADE_FILE_NAMES: [&str; 2] = ["proton-system-upgrade.yaml", "proton-k3s-upgrade.yaml"];

const UPSTREAM_DIR: &str = "upstream/system-upgrade-controller-v0.20.1";
const CRD_YAML: &str = include_str!("upstream/system-upgrade-controller-v0.20.1/crd.yaml");
const KUSTOMIZATION_YAML: &str =
    include_str!("upstream/system-upgrade-controller-v0.20.1/kustomization.yaml");
/// kustomization.yaml's `resources:`, in its order.
const RESOURCES: [(&str, &str); 3] = [
    (
        "manifests/clusterrole.yaml",
        include_str!("upstream/system-upgrade-controller-v0.20.1/clusterrole.yaml"),
    ),
    (
        "manifests/clusterrolebinding.yaml",
        include_str!("upstream/system-upgrade-controller-v0.20.1/clusterrolebinding.yaml"),
    ),
    (
        "manifests/system-upgrade-controller.yaml",
        include_str!("upstream/system-upgrade-controller-v0.20.1/system-upgrade-controller.yaml"),
    ),
];
const CONTROLLER_IMAGE: &str = "rancher/system-upgrade-controller";

/// What the upgrade add-on is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeParams {
    /// The K3s release every node is to run: the spec's `k3s.version`.
    pub k3s_version: String,
}

// ---- upgrade.cattle.io/v1 Plan ------------------------------------------------------------

pub const UPGRADE_API: &str = "upgrade.cattle.io/v1";

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: Meta,
    pub spec: PlanSpec,
}

/// The fields of `PlanSpec` (pkg/apis/upgrade.cattle.io/v1/types.go@v0.20.1) Proton sets.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanSpec {
    pub concurrency: i64,
    pub cordon: bool,
    pub node_selector: LabelSelector,
    pub service_account_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prepare: Option<ContainerSpec>,
    pub upgrade: ContainerSpec,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerSpec {
    pub image: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
}

/// The two Plans of docs.k3s.io upgrades/automated, pinned to `version` instead of a
/// channel: the server plan, then the agent plan that waits for it.
pub fn plans(p: &UpgradeParams) -> Result<Vec<Object>, AddonsError> {
    check_version(&p.k3s_version)?;
    let plan = |name: &str, operator: &'static str, values: Vec<String>, prepare| {
        Object::Plan(Plan {
            api_version: UPGRADE_API,
            kind: "Plan",
            metadata: Meta::namespaced(SYSTEM_UPGRADE_NAMESPACE, name),
            spec: PlanSpec {
                // One node at a time: the gateway is the only server; workers one by one.
                concurrency: 1,
                cordon: true,
                node_selector: LabelSelector {
                    match_expressions: vec![LabelSelectorRequirement {
                        key: CONTROL_PLANE_LABEL.to_owned(),
                        operator,
                        values,
                    }],
                },
                service_account_name: SYSTEM_UPGRADE_SERVICE_ACCOUNT.to_owned(),
                prepare,
                upgrade: ContainerSpec {
                    image: K3S_UPGRADE_IMAGE.to_owned(),
                    args: vec![],
                },
                version: p.k3s_version.clone(),
            },
        })
    };
    Ok(vec![
        plan(SERVER_PLAN, "In", vec!["true".to_owned()], None),
        plan(
            AGENT_PLAN,
            "DoesNotExist",
            vec![],
            // k3s-upgrade's scripts/upgrade.sh `prepare`: waits until the named plan has
            // no node applying and every control-plane kubelet runs this plan's version.
            Some(ContainerSpec {
                image: K3S_UPGRADE_IMAGE.to_owned(),
                args: vec!["prepare".to_owned(), SERVER_PLAN.to_owned()],
            }),
        ),
    ])
}

/// A K3s release name as the k3s-upgrade image is tagged: `v1.34.2+k3s1`.
fn check_version(v: &str) -> Result<(), AddonsError> {
    let ok = v.strip_prefix('v').is_some_and(|rest| {
        let (semver, build) = rest.split_once("+k3s").unwrap_or((rest, ""));
        !build.is_empty()
            && build.bytes().all(|b| b.is_ascii_digit())
            && semver.split('.').count() == 3
            && semver
                .split(['.', '-'])
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric()))
    });
    if ok {
        Ok(())
    } else {
        Err(AddonsError::Name {
            field: "k3s.version",
            value: v.to_owned(),
        })
    }
}

/// Upstream's release asset `system-upgrade-controller.yaml` preceded by `crd.yaml`, as
/// the K3s docs install them, built from the verbatim upstream files.
pub fn controller_objects() -> Result<Vec<Value>, AddonsError> {
    let parse = |file: &str, text: &str| -> Result<Vec<Value>, AddonsError> {
        use serde::Deserialize;
        let mut out = Vec::new();
        for doc in serde_norway::Deserializer::from_str(text) {
            let v = serde_norway::Value::deserialize(doc).map_err(|source| AddonsError::Parse {
                file: format!("{UPSTREAM_DIR}/{file}"),
                source,
            })?;
            if !v.is_null() {
                out.push(serde_json::to_value(v).map_err(|_| AddonsError::Empty {
                    field: "upstream manifest",
                })?);
            }
        }
        Ok(out)
    };
    let kustomization = parse("kustomization.yaml", KUSTOMIZATION_YAML)?
        .pop()
        .unwrap_or_default();
    let namespace = kustomization["namespace"].as_str().unwrap_or_default();
    debug_assert_eq!(namespace, SYSTEM_UPGRADE_NAMESPACE);
    let mut objects = Vec::new();
    for (path, text) in RESOURCES {
        debug_assert!(
            kustomization["resources"]
                .as_array()
                .is_some_and(|r| r.iter().any(|p| p == path))
        );
        objects.extend(parse(path, text)?);
    }
    let service_accounts: Vec<String> = objects
        .iter()
        .filter(|o| o["kind"] == "ServiceAccount")
        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    let image = format!("{CONTROLLER_IMAGE}:{SYSTEM_UPGRADE_CONTROLLER_VERSION}");
    for o in &mut objects {
        let kind = o["kind"].as_str().unwrap_or_default().to_owned();
        // kustomize's metaNamespaceHack: namespaced kinds get the namespace.
        if !matches!(
            kind.as_str(),
            "Namespace" | "ClusterRole" | "ClusterRoleBinding" | "CustomResourceDefinition"
        ) {
            o["metadata"]["namespace"] = Value::from(namespace);
        }
        // kustomize's namespace transformer roleBindingHack.
        if matches!(kind.as_str(), "RoleBinding" | "ClusterRoleBinding")
            && let Some(subjects) = o.get_mut("subjects").and_then(Value::as_array_mut)
        {
            for s in subjects {
                let named = s["name"]
                    .as_str()
                    .is_some_and(|n| service_accounts.iter().any(|sa| sa == n));
                if s["kind"] == "ServiceAccount" && named {
                    s["namespace"] = Value::from(namespace);
                }
            }
        }
        // `kustomize edit set image` + the kustomization's images: every container.
        // (`pointer_mut`, not indexing: `value["k"]` on a missing key inserts a null.)
        if let Some(containers) = o
            .pointer_mut("/spec/template/spec/containers")
            .and_then(Value::as_array_mut)
        {
            for c in containers {
                let name = c["image"].as_str().unwrap_or_default();
                if name.split(':').next() == Some(CONTROLLER_IMAGE) {
                    c["image"] = Value::from(image.clone());
                }
            }
        }
    }
    objects.extend(parse("crd.yaml", CRD_YAML)?);
    // kustomize's legacy order (api/resid/gvk.go orderFirst), ties by namespace + name.
    const ORDER: [&str; 9] = [
        "Namespace",
        "CustomResourceDefinition",
        "ServiceAccount",
        "Role",
        "ClusterRole",
        "RoleBinding",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
    ];
    let rank = |o: &Value| {
        let kind = o["kind"].as_str().unwrap_or_default();
        let i = ORDER.iter().position(|k| *k == kind).unwrap_or(ORDER.len());
        let m = &o["metadata"];
        (
            i,
            format!(
                "{}{}",
                m["namespace"].as_str().unwrap_or_default(),
                m["name"].as_str().unwrap_or_default()
            ),
        )
    };
    objects.sort_by_key(rank);
    for o in &mut objects {
        if !o["metadata"]["labels"].is_object() {
            o["metadata"]["labels"] = Value::Object(Default::default());
        }
        o["metadata"]["labels"][MANAGED_BY.0] = Value::from(MANAGED_BY.1);
    }
    Ok(objects)
}

/// The two upgrade files ([`UPGRADE_FILE_NAMES`]). `None`: both with no objects, so K3s
/// prunes the Plans and the controller (used when upgrades are not K3s's to do, e.g. an
/// air-gapped host that cannot pull the upgrade image).
pub fn render_upgrade_manifests(
    p: Option<&UpgradeParams>,
) -> Result<Vec<ManifestFile>, AddonsError> {
    let (controller, plans) = match p {
        Some(p) => (controller_objects()?, plans(p)?),
        None => (Vec::new(), Vec::new()),
    };
    let mut controller_yaml = to_yaml(&[])?;
    for o in &controller {
        controller_yaml.push_str("---\n");
        controller_yaml.push_str(&serde_norway::to_string(o).map_err(AddonsError::Yaml)?);
    }
    Ok(vec![
        ManifestFile {
            name: UPGRADE_FILE_NAMES[0].to_owned(),
            yaml: controller_yaml,
        },
        ManifestFile {
            name: UPGRADE_FILE_NAMES[1].to_owned(),
            yaml: to_yaml(&plans)?,
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_k3s_release_names() {
        for ok in ["v1.34.2+k3s1", "v1.35.0+k3s2", "v1.34.2-rc1+k3s1"] {
            check_version(ok).unwrap();
        }
        for bad in [
            "1.34.2+k3s1",
            "v1.34.2",
            "v1.34+k3s1",
            "v1.34.2+k3s",
            "latest",
            "",
        ] {
            assert!(check_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_release_build_namespaces_binds_and_tags_like_kustomize() {
        let objs = controller_objects().unwrap();
        let kinds: Vec<&str> = objs.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "Namespace",
                "CustomResourceDefinition",
                "ServiceAccount",
                "Role",
                "ClusterRole",
                "ClusterRole",
                "RoleBinding",
                "ClusterRoleBinding",
                "ClusterRoleBinding",
                "ConfigMap",
                "Deployment"
            ]
        );
        for o in &objs {
            let cluster_scoped = matches!(
                o["kind"].as_str().unwrap(),
                "Namespace" | "ClusterRole" | "ClusterRoleBinding" | "CustomResourceDefinition"
            );
            assert_eq!(
                o["metadata"]["namespace"].is_null(),
                cluster_scoped,
                "{}",
                o["metadata"]
            );
            for s in o["subjects"].as_array().into_iter().flatten() {
                assert_eq!(s["namespace"], SYSTEM_UPGRADE_NAMESPACE, "{o}");
            }
        }
        // Nothing added that upstream does not have (a null is what a stray index makes).
        fn no_null(v: &Value, at: &str) {
            match v {
                Value::Null => panic!("null at {at}"),
                Value::Array(a) => a.iter().for_each(|x| no_null(x, at)),
                Value::Object(m) => m.iter().for_each(|(k, x)| no_null(x, &format!("{at}/{k}"))),
                _ => {}
            }
        }
        for o in &objs {
            no_null(o, o["kind"].as_str().unwrap());
            let before = o.as_object().unwrap().keys().collect::<Vec<_>>();
            assert!(
                before.iter().all(|k| [
                    "apiVersion",
                    "kind",
                    "metadata",
                    "spec",
                    "rules",
                    "roleRef",
                    "subjects",
                    "data"
                ]
                .contains(&k.as_str())),
                "{before:?}"
            );
        }
        let roles = objs
            .iter()
            .filter(|o| o["kind"] == "Role" || o["kind"] == "ClusterRole");
        assert!(roles.into_iter().all(|r| r.get("spec").is_none()));
        let deploy = objs.last().unwrap();
        assert_eq!(
            deploy["spec"]["template"]["spec"]["containers"][0]["image"],
            "rancher/system-upgrade-controller:v0.20.1"
        );
    }
}
