//! K3s upgrades through the system-upgrade-controller: the Plans Proton writes validate
//! against the Plan CRD (rancher/system-upgrade-controller
//! pkg/crds/yaml/generated/upgrade.cattle.io_plans.yaml@v0.20.1), the controller's objects
//! read back as their Kubernetes types, and — against a stand-in that does what upstream
//! does — raising the version upgrades the server first, then the agents, never leaving a
//! kubelet newer than the server.
//!
//! The stand-in (`Cluster` below) copies, at the versions Proton pins:
//! - the controller's node selection, rancher/system-upgrade-controller@v0.20.1
//!   pkg/upgrade/plan/plan.go `SelectConcurrentNodes` / `NodeSelector`: the plan's
//!   nodeSelector AND `kubernetes.io/hostname` Exists AND label
//!   `plan.upgrade.cattle.io/<plan>` NotIn [disabled, latestHash]; at most `concurrency`
//!   nodes, those already `applying` first; `status.latestVersion` =
//!   `MungeVersion(spec.version)` (`+` → `-`, pkg/upgrade/handle_upgrade.go); a finished job
//!   labels its node with the plan's hash (pkg/upgrade/handle_batch.go);
//! - the upgrade and prepare steps of the image, k3s-io/k3s-upgrade@v1.34.2+k3s1
//!   scripts/upgrade.sh: `prepare PLAN` loops until PLAN exists and its
//!   `.status.applying` is empty, then until every node with the control-plane label runs
//!   (kubeletVersion, `+` → `-`) `$SYSTEM_UPGRADE_PLAN_LATEST_VERSION`; `upgrade` refuses a
//!   downgrade and replaces the binary (the kubelet restarts at the new version);
//! - Kubernetes label-selector semantics (k8s.io/apimachinery pkg/labels): In, NotIn
//!   (true when the label is absent), Exists, DoesNotExist;
//! - node labels as K3s sets them: servers get `node-role.kubernetes.io/control-plane=true`
//!   and `node-role.kubernetes.io/master=true` (k3s pkg/server, where the server waits for its own Node and labels it),
//!   agents neither; every kubelet sets `kubernetes.io/hostname` and `kubernetes.io/os`.

use proton_addons::{
    AGENT_PLAN, SERVER_PLAN, SYSTEM_UPGRADE_NAMESPACE, UPGRADE_FILE_NAMES, UpgradeParams,
    object_refs, render_upgrade_manifests,
};
use proton_test_support::schema::{errors, load_crd, yaml_to_json};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The system-upgrade-controller's Plan CRD, copied into `tests/schemas/crds/`.
fn plan_crd() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/schemas/crds/upgrade.cattle.io_plans.yaml")
}

fn docs(yaml: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_norway::Deserializer::from_str(yaml)
        .map(|d| serde_json::to_value(serde_norway::Value::deserialize(d).unwrap()).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn rendered(version: &str) -> (Vec<Value>, Vec<Value>) {
    let files = render_upgrade_manifests(Some(&UpgradeParams {
        k3s_version: version.into(),
    }))
    .unwrap();
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, UPGRADE_FILE_NAMES);
    (docs(&files[0].yaml), docs(&files[1].yaml))
}

#[test]
fn plans_validate_against_the_plan_crd_and_follow_the_k3s_docs() {
    let crd = load_crd(&plan_crd());
    let (_, plans) = rendered("v1.34.2+k3s1");
    assert_eq!(plans.len(), 2);
    for p in &plans {
        assert_eq!(p["apiVersion"], crd.api_version);
        assert_eq!(p["kind"], crd.kind);
        assert_eq!(errors(&crd.validator, p), Vec::<String>::new(), "{p:#}");
        // Same namespace as the controller (docs.k3s.io: "The plans must be created in the
        // same namespace where the controller was deployed").
        assert_eq!(p["metadata"]["namespace"], SYSTEM_UPGRADE_NAMESPACE);
        assert_eq!(p["spec"]["version"], "v1.34.2+k3s1");
        assert_eq!(p["spec"]["upgrade"]["image"], "rancher/k3s-upgrade");
        assert_eq!(p["spec"]["serviceAccountName"], "system-upgrade");
        assert!(p["spec"].get("channel").is_none(), "pinned, not a channel");
    }
    assert_eq!(plans[0]["metadata"]["name"], SERVER_PLAN);
    assert_eq!(plans[1]["metadata"]["name"], AGENT_PLAN);
    assert_eq!(
        plans[1]["spec"]["prepare"],
        json!({"image": "rancher/k3s-upgrade", "args": ["prepare", SERVER_PLAN]})
    );
    assert!(plans[0]["spec"].get("prepare").is_none());

    // Not vacuous: the validator refuses what the API server would.
    let mut bad = plans[1].clone();
    bad["spec"]["serviceAccount"] = bad["spec"]["serviceAccountName"].take();
    bad["spec"]
        .as_object_mut()
        .unwrap()
        .remove("serviceAccountName");
    assert!(!errors(&crd.validator, &bad).is_empty(), "unknown field");
    let mut bad = plans[0].clone();
    bad["spec"]["concurrency"] = json!("one");
    assert!(!errors(&crd.validator, &bad).is_empty(), "wrong type");
    let mut bad = plans[0].clone();
    bad["spec"].as_object_mut().unwrap().remove("upgrade");
    assert!(
        !errors(&crd.validator, &bad).is_empty(),
        "upgrade is required"
    );
}

#[test]
fn controller_objects_are_upstreams_and_read_back_as_their_types() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let (controller, _) = rendered("v1.34.2+k3s1");
    for o in &controller {
        let ok = match o["kind"].as_str().unwrap() {
            "Namespace" => serde_json::from_value::<Namespace>(o.clone()).is_ok(),
            "ServiceAccount" => serde_json::from_value::<ServiceAccount>(o.clone()).is_ok(),
            "ConfigMap" => serde_json::from_value::<ConfigMap>(o.clone()).is_ok(),
            "Deployment" => serde_json::from_value::<Deployment>(o.clone()).is_ok(),
            "Role" => serde_json::from_value::<Role>(o.clone()).is_ok(),
            "ClusterRole" => serde_json::from_value::<ClusterRole>(o.clone()).is_ok(),
            "RoleBinding" => serde_json::from_value::<RoleBinding>(o.clone()).is_ok(),
            "ClusterRoleBinding" => serde_json::from_value::<ClusterRoleBinding>(o.clone()).is_ok(),
            "CustomResourceDefinition" => {
                serde_json::from_value::<CustomResourceDefinition>(o.clone()).is_ok()
            }
            _ => false,
        };
        assert!(ok, "{} {}", o["kind"], o["metadata"]["name"]);
        assert_eq!(
            o["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "proton"
        );
    }
    // The CRD shipped is the one the Plans were validated against.
    let crd = controller
        .iter()
        .find(|o| o["kind"] == "CustomResourceDefinition")
        .unwrap();
    let mut on_disk = yaml_to_json(&std::fs::read_to_string(plan_crd()).unwrap());
    on_disk["metadata"]["labels"] = crd["metadata"]["labels"].clone();
    assert_eq!(*crd, on_disk);
    // A ServiceAccount subject of a ClusterRoleBinding must name its namespace, or the API
    // server refuses it; the Plans' jobs run as this account.
    let crb = controller
        .iter()
        .find(|o| o["kind"] == "ClusterRoleBinding" && o["metadata"]["name"] == "system-upgrade")
        .unwrap();
    assert_eq!(
        crb["subjects"],
        json!([{"kind": "ServiceAccount", "name": "system-upgrade", "namespace": "system-upgrade"}])
    );
    // The controller only runs on a control-plane node: the gateway.
    let d = controller
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .unwrap();
    let terms = &d["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"];
    assert_eq!(
        terms[0]["matchExpressions"][0],
        json!({"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"})
    );
}

#[test]
fn turned_off_both_files_stay_with_no_objects() {
    let files = render_upgrade_manifests(None).unwrap();
    assert_eq!(
        files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        UPGRADE_FILE_NAMES
    );
    for f in &files {
        assert!(object_refs(f).unwrap().is_empty(), "{}", f.yaml);
    }
    assert!(
        render_upgrade_manifests(Some(&UpgradeParams {
            k3s_version: "latest".into()
        }))
        .is_err()
    );
}

// ---- the stand-in cluster -----------------------------------------------------------------

#[derive(Clone, Debug)]
struct Node {
    labels: BTreeMap<String, String>,
    kubelet: String,
}

#[derive(Clone, Debug)]
struct PlanState {
    spec: Value,
    name: String,
    latest_version: String,
    latest_hash: String,
    applying: Vec<String>,
}

struct Cluster {
    nodes: BTreeMap<String, Node>,
    plans: Vec<PlanState>,
    /// Every kubelet change, in order: (node, new version).
    log: Vec<(String, String)>,
}

fn munge(v: &str) -> String {
    v.replace('+', "-")
}

/// (major, minor, patch) of `v1.34.2+k3s1` / `v1.34.2-k3s1`, as upgrade.sh compares them.
fn semver(v: &str) -> (u32, u32, u32) {
    let core = v.trim_start_matches('v');
    let core = core.split(['+', '-']).next().unwrap();
    let mut it = core.split('.').map(|p| p.parse::<u32>().unwrap());
    (it.next().unwrap(), it.next().unwrap(), it.next().unwrap())
}

fn matches(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    let ml_ok = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str());
    let me_ok = selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|e| {
            let key = e["key"].as_str().unwrap();
            let values: Vec<&str> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| v.as_str().unwrap())
                .collect();
            let have = labels.get(key).map(String::as_str);
            match e["operator"].as_str().unwrap() {
                "In" => have.is_some_and(|h| values.contains(&h)),
                "NotIn" => have.is_none_or(|h| !values.contains(&h)),
                "Exists" => have.is_some(),
                "DoesNotExist" => have.is_none(),
                op => panic!("unknown operator {op}"),
            }
        });
    ml_ok && me_ok
}

/// K3s v1.34.2 nodes: one server (the gateway) and agents, all at `version`.
fn cluster(version: &str, agents: &[&str]) -> BTreeMap<String, Node> {
    let node = |name: &str, server: bool| {
        let mut labels = BTreeMap::from([
            ("kubernetes.io/hostname".to_string(), name.to_string()),
            ("kubernetes.io/os".to_string(), "linux".to_string()),
            ("kubernetes.io/arch".to_string(), "arm64".to_string()),
            (
                "node.kubernetes.io/instance-type".to_string(),
                "k3s".to_string(),
            ),
        ]);
        if server {
            labels.insert(
                "node-role.kubernetes.io/control-plane".into(),
                "true".into(),
            );
            labels.insert("node-role.kubernetes.io/master".into(), "true".into());
        }
        (
            name.to_string(),
            Node {
                labels,
                kubelet: version.to_string(),
            },
        )
    };
    let mut nodes = BTreeMap::from([node("gateway", true)]);
    nodes.extend(agents.iter().map(|a| node(a, false)));
    nodes
}

impl Cluster {
    fn new(nodes: BTreeMap<String, Node>, plans: &[Value]) -> Self {
        let plans = plans
            .iter()
            .map(|p| {
                let v = munge(p["spec"]["version"].as_str().unwrap());
                PlanState {
                    name: p["metadata"]["name"].as_str().unwrap().into(),
                    spec: p["spec"].clone(),
                    latest_hash: format!("hash-{v}-{}", p["spec"]["serviceAccountName"]),
                    latest_version: v,
                    applying: vec![],
                }
            })
            .collect();
        Cluster {
            nodes,
            plans,
            log: vec![],
        }
    }

    /// The controller's pass over plan `i`: the nodes it runs jobs on now.
    fn select(&mut self, i: usize) -> Vec<String> {
        let p = &self.plans[i];
        let label = format!("plan.upgrade.cattle.io/{}", p.name);
        let eligible = |n: &Node| {
            matches(&p.spec["nodeSelector"], &n.labels)
                && n.labels.contains_key("kubernetes.io/hostname")
                && n.labels
                    .get(&label)
                    .is_none_or(|h| h != "disabled" && *h != p.latest_hash)
        };
        let mut selected: Vec<String> = p
            .applying
            .iter()
            .filter(|n| eligible(&self.nodes[*n]))
            .cloned()
            .collect();
        let concurrency = p.spec["concurrency"].as_u64().unwrap_or(1) as usize;
        for (name, n) in &self.nodes {
            if selected.len() >= concurrency {
                break;
            }
            if !p.applying.contains(name) && eligible(n) {
                selected.push(name.clone());
            }
        }
        selected.sort();
        self.plans[i].applying = selected.clone();
        selected
    }

    /// upgrade.sh `prepare PLAN`: may the job go on now?
    fn prepare_done(&self, args: &[String], latest_version: &str) -> bool {
        assert_eq!(args[0], "prepare");
        let Some(cp) = self.plans.iter().find(|p| p.name == args[1]) else {
            return false; // "Waiting for control-plane Plan ... to be created"
        };
        if !cp.applying.is_empty() {
            return false; // "Waiting for all control-plane nodes to be upgraded"
        }
        let mut versions: Vec<String> = self
            .nodes
            .values()
            .filter(|n| {
                n.labels
                    .contains_key("node-role.kubernetes.io/control-plane")
            })
            .map(|n| munge(&n.kubelet))
            .collect();
        versions.sort();
        versions.dedup();
        versions.len() == 1 && versions[0] == latest_version
    }

    /// One job of plan `i` on `node`, run as far as it can go now. True when it finished.
    fn run_job(&mut self, i: usize, node: &str) -> bool {
        let p = self.plans[i].clone();
        if let Some(prepare) = p.spec.get("prepare") {
            let args: Vec<String> = prepare["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_owned())
                .collect();
            if !self.prepare_done(&args, &p.latest_version) {
                return false;
            }
        }
        // upgrade: the image is k3s-upgrade:<latestVersion>; refuse a downgrade.
        let n = self.nodes.get_mut(node).unwrap();
        assert!(
            semver(&n.kubelet) <= semver(&p.latest_version),
            "downgrade refused on {node}"
        );
        if munge(&n.kubelet) != p.latest_version {
            n.kubelet = p.latest_version.replacen("-k3s", "+k3s", 1);
            self.log.push((node.to_owned(), n.kubelet.clone()));
        }
        n.labels.insert(
            format!("plan.upgrade.cattle.io/{}", p.name),
            p.latest_hash.clone(),
        );
        self.plans[i].applying.retain(|a| a != node);
        true
    }

    /// No agent's kubelet newer than any server's.
    fn skew_ok(&self) -> Result<(), String> {
        let is_cp = |n: &Node| {
            n.labels
                .contains_key("node-role.kubernetes.io/control-plane")
        };
        let server = self
            .nodes
            .values()
            .filter(|n| is_cp(n))
            .map(|n| semver(&n.kubelet))
            .min()
            .unwrap();
        for (name, n) in &self.nodes {
            if !is_cp(n) && semver(&n.kubelet) > server {
                return Err(format!("{name} runs {} ahead of the server", n.kubelet));
            }
        }
        Ok(())
    }

    /// Runs the controller until nothing changes, plans visited in `order` each round
    /// (the controller's plan handlers run concurrently: every order can happen).
    fn converge(&mut self, order: &[usize]) -> Result<(), String> {
        for _round in 0..50 {
            let mut progressed = false;
            for &i in order {
                for node in self.select(i) {
                    if self.run_job(i, &node) {
                        progressed = true;
                        self.skew_ok()?;
                    }
                }
            }
            if !progressed {
                return Ok(());
            }
        }
        Err("did not converge".into())
    }
}

fn upgrade(plans: &[Value], order: &[usize]) -> (Cluster, Result<(), String>) {
    let mut c = Cluster::new(
        cluster("v1.34.2+k3s1", &["home-1", "home-2", "pi-3"]),
        plans,
    );
    let r = c.converge(order);
    (c, r)
}

#[test]
fn raising_the_version_upgrades_the_server_then_every_agent() {
    let (_, plans) = rendered("v1.35.0+k3s1");
    // Whichever plan the controller handles first.
    for order in [[0, 1], [1, 0]] {
        let (c, r) = upgrade(&plans, &order);
        r.unwrap();
        let who: Vec<&str> = c.log.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            who,
            ["gateway", "home-1", "home-2", "pi-3"],
            "order {order:?}"
        );
        assert!(c.nodes.values().all(|n| n.kubelet == "v1.35.0+k3s1"));
        assert!(c.plans.iter().all(|p| p.applying.is_empty()));
    }
    // Already there: nothing to do (the second apply of the same version).
    let (_, same) = rendered("v1.34.2+k3s1");
    let (c, r) = upgrade(&same, &[1, 0]);
    r.unwrap();
    assert!(c.log.is_empty(), "{:?}", c.log);
}

#[test]
fn without_the_prepare_step_an_agent_would_run_ahead_of_the_server() {
    // Proves the stand-in can fail: the agent plan minus its `prepare` (what a home-made
    // pair of plans easily gets wrong) upgrades a worker before the server.
    let (_, mut plans) = rendered("v1.35.0+k3s1");
    plans[1]["spec"].as_object_mut().unwrap().remove("prepare");
    let (c, r) = upgrade(&plans, &[1, 0]);
    let err = r.unwrap_err();
    assert!(err.contains("ahead of the server"), "{err}");
    assert_eq!(c.log[0].0, "home-1");
}

#[test]
fn each_plan_selects_exactly_its_nodes() {
    let (_, plans) = rendered("v1.35.0+k3s1");
    let mut c = Cluster::new(cluster("v1.34.2+k3s1", &["home-1", "home-2"]), &plans);
    for p in c.plans.iter_mut() {
        p.spec["concurrency"] = json!(10);
    }
    assert_eq!(c.select(0), ["gateway"]);
    assert_eq!(c.select(1), ["home-1", "home-2"]);
}
