//! The cluster as K3s reports it: nodes and readiness, add-ons (HelmChart install jobs),
//! certificates (cert-manager), and version skew between the server and each kubelet.
//!
//! Read with `k3s kubectl … -o json` only when K3s is installed here (its kubeconfig
//! and the `k3s` binary exist under the root, where the K3s installer puts them);
//! otherwise the cluster is "not running". The binary is taken from the root, not from
//! PATH, like `proton apply` and the join API do: `--root DIR` then reads the cluster
//! of that tree and never the host's.
//! The parsing works on `serde_json::Value` and is tested on sample output.

use crate::probe;
use proton_k3s::install::DEFAULT_K3S_BIN;
use serde::Serialize;
use serde_json::Value;

/// K3s's admin kubeconfig on the server.
pub const K3S_KUBECONFIG: &str = "/etc/rancher/k3s/k3s.yaml";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeInfo {
    pub name: String,
    pub ready: bool,
    pub control_plane: bool,
    pub kubelet_version: String,
    pub internal_ip: Option<String>,
    /// `status.addresses` of type ExternalIP: set by K3s's embedded cloud controller from
    /// `node-external-ip` (k3s-io/k3s pkg/cloudprovider/instances.go `NodeAddresses`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_ips: Vec<String>,
    /// Flannel's `flannel.alpha.coreos.com/public-ip` annotation: the address VXLAN
    /// peers send to (the `flannel-iface` address, so the tunnel address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flannel_public_ip: Option<String>,
}

/// Flannel's annotation naming the address other nodes send this node's VXLAN to
/// (flannel-io/flannel pkg/subnet/kube/annotations.go: `<prefix>/public-ip`, prefix
/// `flannel.alpha.coreos.com`).
pub const FLANNEL_PUBLIC_IP: &str = "flannel.alpha.coreos.com/public-ip";

/// The Traefik chart's pod/Service label (traefik/traefik-helm-chart
/// traefik/templates/_helpers.tpl@v41.3.0 `traefik.labelselector`).
pub const TRAEFIK_NAME_LABEL: (&str, &str) = ("app.kubernetes.io/name", "traefik");

/// Traefik's namespace (`proton_addons::TRAEFIK_NAMESPACE`).
pub const TRAEFIK_NAMESPACE: &str = "ingress-traefik";

/// Where Traefik runs and how it is reached, from its namespace's pods and Services.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraefikInfo {
    /// `(pod name, spec.nodeName)` of every Traefik pod.
    pub pods: Vec<(String, String)>,
    /// Traefik's Service type (`ClusterIP` with Proton's host ports; `LoadBalancer`
    /// when something made it a ServiceLB Service).
    pub service_type: Option<String>,
    /// `status.loadBalancer.ingress[].ip` of that Service.
    pub lb_ingress: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddonInfo {
    pub name: String,
    pub namespace: String,
    pub chart: String,
    pub version: Option<String>,
    /// The helm-install job: `succeeded`, `failed`, `running` or `missing`.
    pub job: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    pub name: String,
    pub namespace: String,
    pub ready: bool,
    pub not_after: Option<String>,
    pub message: Option<String>,
}

/// A kubelet whose version does not fit the server's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skew {
    pub node: String,
    pub kubelet: String,
    pub server: String,
    /// A kubelet newer than the API server is unsupported (fail); more than three minor
    /// versions older is outside the skew policy (warn).
    pub newer: bool,
}

/// What `status`/`doctor` know of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ClusterView {
    NotRunning {
        reason: String,
    },
    Unreachable {
        error: String,
    },
    Running {
        server_version: Option<String>,
        nodes: Vec<NodeInfo>,
        addons: Vec<AddonInfo>,
        certificates: Vec<CertInfo>,
        skew: Vec<Skew>,
        /// `None` when Traefik's namespace could not be read (no ingress add-on).
        #[serde(skip_serializing_if = "Option::is_none")]
        traefik: Option<TraefikInfo>,
    },
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn condition<'a>(conditions: &'a Value, kind: &str) -> Option<&'a Value> {
    conditions
        .as_array()?
        .iter()
        .find(|c| c["type"].as_str() == Some(kind))
}

/// `kubectl get nodes -o json`.
pub fn parse_nodes(list: &Value) -> Vec<NodeInfo> {
    let items = list["items"].as_array().cloned().unwrap_or_default();
    items
        .iter()
        .map(|n| {
            let labels = &n["metadata"]["labels"];
            NodeInfo {
                name: s(&n["metadata"]["name"]),
                ready: condition(&n["status"]["conditions"], "Ready")
                    .is_some_and(|c| c["status"] == "True"),
                control_plane: labels
                    .get("node-role.kubernetes.io/control-plane")
                    .is_some(),
                kubelet_version: s(&n["status"]["nodeInfo"]["kubeletVersion"]),
                internal_ip: n["status"]["addresses"].as_array().and_then(|a| {
                    a.iter()
                        .find(|x| x["type"] == "InternalIP")
                        .map(|x| s(&x["address"]))
                }),
                external_ips: n["status"]["addresses"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter(|x| x["type"] == "ExternalIP")
                            .map(|x| s(&x["address"]))
                            .collect()
                    })
                    .unwrap_or_default(),
                flannel_public_ip: n["metadata"]["annotations"][FLANNEL_PUBLIC_IP]
                    .as_str()
                    .map(String::from),
            }
        })
        .collect()
}

/// `kubectl -n <traefik namespace> get pods -o json` and `… get services -o json`: the
/// pods and Service carrying the chart's `app.kubernetes.io/name: traefik` label.
pub fn parse_traefik(pods: &Value, services: &Value) -> TraefikInfo {
    let (key, want) = TRAEFIK_NAME_LABEL;
    let ours = |o: &&Value| o["metadata"]["labels"][key] == want;
    let items = |v: &Value| v["items"].as_array().cloned().unwrap_or_default();
    let pods = items(pods)
        .iter()
        .filter(ours)
        .map(|p| (s(&p["metadata"]["name"]), s(&p["spec"]["nodeName"])))
        .collect();
    let services = items(services);
    let svc = services.iter().find(ours);
    TraefikInfo {
        pods,
        service_type: svc.and_then(|v| v["spec"]["type"].as_str().map(String::from)),
        lb_ingress: svc
            .and_then(|v| v["status"]["loadBalancer"]["ingress"].as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|i| i["ip"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// `kubectl get helmcharts -A -o json` and `kubectl get jobs -A -o json`: each chart
/// with the state of its `helm-install-<name>` job.
pub fn parse_addons(charts: &Value, jobs: &Value) -> Vec<AddonInfo> {
    let jobs = jobs["items"].as_array().cloned().unwrap_or_default();
    let charts = charts["items"].as_array().cloned().unwrap_or_default();
    charts
        .iter()
        .map(|c| {
            let name = s(&c["metadata"]["name"]);
            let job_name = format!("helm-install-{name}");
            let job = jobs
                .iter()
                .find(|j| j["metadata"]["name"] == job_name.as_str())
                .map(|j| {
                    let st = &j["status"];
                    if condition(&st["conditions"], "Complete")
                        .is_some_and(|c| c["status"] == "True")
                        || st["succeeded"].as_u64().unwrap_or(0) > 0
                    {
                        "succeeded"
                    } else if condition(&st["conditions"], "Failed")
                        .is_some_and(|c| c["status"] == "True")
                    {
                        "failed"
                    } else {
                        "running"
                    }
                })
                .unwrap_or("missing");
            AddonInfo {
                namespace: s(&c["metadata"]["namespace"]),
                chart: s(&c["spec"]["chart"]),
                version: c["spec"]["version"].as_str().map(String::from),
                job: job.to_string(),
                name,
            }
        })
        .collect()
}

/// `kubectl get certificates.cert-manager.io -A -o json`.
pub fn parse_certificates(list: &Value) -> Vec<CertInfo> {
    let items = list["items"].as_array().cloned().unwrap_or_default();
    items
        .iter()
        .map(|c| {
            let ready = condition(&c["status"]["conditions"], "Ready");
            CertInfo {
                name: s(&c["metadata"]["name"]),
                namespace: s(&c["metadata"]["namespace"]),
                ready: ready.is_some_and(|r| r["status"] == "True"),
                not_after: c["status"]["notAfter"].as_str().map(String::from),
                message: ready.and_then(|r| r["message"].as_str().map(String::from)),
            }
        })
        .collect()
}

/// `v1.31.4+k3s1` → (1, 31, 4).
fn semver(version: &str) -> Option<(u64, u64, u64)> {
    let v = version.trim_start_matches('v');
    let mut parts = v.split(['.', '+', '-']);
    Some((
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next().and_then(|p| p.parse().ok()).unwrap_or(0),
    ))
}

/// The server's version: the control-plane node's kubelet (K3s runs both from one binary).
pub fn server_version(nodes: &[NodeInfo]) -> Option<String> {
    nodes
        .iter()
        .find(|n| n.control_plane)
        .map(|n| n.kubelet_version.clone())
}

/// Kubelets that are newer than the server, or more than three minors older.
pub fn version_skew(nodes: &[NodeInfo]) -> Vec<Skew> {
    let Some(server) = server_version(nodes) else {
        return Vec::new();
    };
    let Some(sv) = semver(&server) else {
        return Vec::new();
    };
    nodes
        .iter()
        .filter(|n| !n.control_plane)
        .filter_map(|n| {
            let kv = semver(&n.kubelet_version)?;
            let newer = kv > sv;
            let too_old = kv.0 == sv.0 && sv.1.saturating_sub(kv.1) > 3;
            (newer || too_old).then(|| Skew {
                node: n.name.clone(),
                kubelet: n.kubelet_version.clone(),
                server: server.clone(),
                newer,
            })
        })
        .collect()
}

fn kubectl(k3s: &str, kubeconfig: &str, args: &[&str]) -> Result<Value, String> {
    let mut argv = vec![
        k3s,
        "kubectl",
        "--kubeconfig",
        kubeconfig,
        "--request-timeout=5s",
    ];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["-o", "json"]);
    let text = probe::run(&argv).map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| format!("k3s kubectl {}: {e}", args.join(" ")))
}

/// Reads the cluster when K3s is installed here.
pub fn probe(root: &proton_core::host::Root) -> ClusterView {
    let kubeconfig = root.path(K3S_KUBECONFIG);
    if !kubeconfig.exists() {
        return ClusterView::NotRunning {
            reason: format!("no kubeconfig at {}", kubeconfig.display()),
        };
    }
    let k3s = root.path(DEFAULT_K3S_BIN);
    if !k3s.is_file() {
        return ClusterView::NotRunning {
            reason: format!("the k3s binary is not installed ({})", k3s.display()),
        };
    }
    let k3s = k3s.display().to_string();
    let kc = kubeconfig.display().to_string();
    let kubectl = |args: &[&str]| kubectl(&k3s, &kc, args);
    let nodes = match kubectl(&["get", "nodes"]) {
        Ok(v) => parse_nodes(&v),
        Err(error) => return ClusterView::Unreachable { error },
    };
    let charts = kubectl(&["get", "helmcharts.helm.cattle.io", "-A"]).unwrap_or_default();
    let jobs = kubectl(&["get", "jobs", "-A"]).unwrap_or_default();
    // cert-manager may not be installed (tls disabled): no certificates then.
    let certs = kubectl(&["get", "certificates.cert-manager.io", "-A"]).unwrap_or_default();
    let ns = TRAEFIK_NAMESPACE;
    let traefik = match (
        kubectl(&["-n", ns, "get", "pods"]),
        kubectl(&["-n", ns, "get", "services"]),
    ) {
        (Ok(p), Ok(s)) => Some(parse_traefik(&p, &s)),
        _ => None,
    };
    ClusterView::Running {
        traefik,
        server_version: server_version(&nodes),
        skew: version_skew(&nodes),
        addons: parse_addons(&charts, &jobs),
        certificates: parse_certificates(&certs),
        nodes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn nodes_readiness_and_skew_from_kubectl_json() {
        let nodes = parse_nodes(&fixture("nodes.json"));
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[0].name, "proton");
        assert!(nodes[0].ready && nodes[0].control_plane);
        assert_eq!(nodes[0].internal_ip.as_deref(), Some("10.7.7.1"));
        assert!(!nodes[2].ready, "home-2's Ready is Unknown");
        assert_eq!(server_version(&nodes).as_deref(), Some("v1.31.4+k3s1"));
        let skew = version_skew(&nodes);
        assert_eq!(skew.len(), 1, "{skew:?}");
        assert_eq!(skew[0].node, "home-2");
        assert!(skew[0].newer, "a kubelet newer than the server");
    }

    #[test]
    fn skew_policy() {
        let node = |name: &str, v: &str, cp: bool| NodeInfo {
            name: name.into(),
            ready: true,
            control_plane: cp,
            kubelet_version: v.into(),
            internal_ip: None,
            external_ips: vec![],
            flannel_public_ip: None,
        };
        let same = [
            node("s", "v1.31.4+k3s1", true),
            node("a", "v1.31.4+k3s1", false),
        ];
        assert!(version_skew(&same).is_empty());
        let older_ok = [
            node("s", "v1.31.4+k3s1", true),
            node("a", "v1.28.2+k3s1", false),
        ];
        assert!(version_skew(&older_ok).is_empty());
        let too_old = [
            node("s", "v1.31.4+k3s1", true),
            node("a", "v1.27.2+k3s1", false),
        ];
        assert!(!version_skew(&too_old)[0].newer);
        let patch_newer = [
            node("s", "v1.31.4+k3s1", true),
            node("a", "v1.31.5+k3s1", false),
        ];
        assert!(version_skew(&patch_newer)[0].newer);
        // Patch levels compare as numbers: 1.31.10 is newer than 1.31.4.
        let ten = [
            node("s", "v1.31.4+k3s1", true),
            node("a", "v1.31.10+k3s1", false),
        ];
        assert!(version_skew(&ten)[0].newer);
        let older_patch = [
            node("s", "v1.31.10+k3s1", true),
            node("a", "v1.31.4+k3s1", false),
        ];
        assert!(version_skew(&older_patch).is_empty());
    }

    #[test]
    fn addons_and_certificates() {
        let addons = parse_addons(&fixture("helmcharts.json"), &fixture("jobs.json"));
        let by = |n: &str| addons.iter().find(|a| a.name == n).unwrap().job.clone();
        assert_eq!(by("traefik"), "succeeded");
        assert_eq!(by("cert-manager"), "failed");
        assert_eq!(by("headlamp"), "missing");
        let certs = parse_certificates(&fixture("certificates.json"));
        assert_eq!(certs.len(), 2);
        assert!(certs[0].ready);
        assert_eq!(certs[0].not_after.as_deref(), Some("2027-02-20T10:00:00Z"));
        assert!(!certs[1].ready);
        assert!(certs[1].message.as_deref().unwrap().contains("challenge"));
    }

    #[test]
    fn no_kubeconfig_means_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let root = proton_core::host::Root::new(dir.path());
        assert!(matches!(probe(&root), ClusterView::NotRunning { .. }));
    }
}
