//! `proton status` and `proton doctor` on a gateway whose K3s is the `fake-k3s` fixture
//! under a temp root, answering `kubectl get … -o json` with the JSON a real cluster
//! gives. The gateway daemon is the real one (`proton gateway run --backend userspace`)
//! in a private network namespace, so every other doctor check reads a real interface,
//! socket and ruleset and the exit code can be asserted exactly: 1 when only warnings
//! remain (a gateway before `proton apply`; an invitee that never connected), 2 with a
//! kubelet newer than the server or a failed add-on job or the API down, 0 when the
//! cluster is healthy.
//!
//! Needs root (network namespace, TUN device) and wireguard-tools, nftables, conntrack;
//! skipped with a message otherwise.

use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_proton");

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn prerequisites() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let tools = ["ip", "wg", "nft", "conntrack"].iter().all(|t| have(t));
    // What doctor's conntrack check asks for on any gateway (K3s needs it too); a lab
    // test may have loaded it already, a fresh machine has not.
    let _ = Command::new("modprobe").arg("nf_conntrack").output();
    if !(root && tools && Path::new("/dev/net/tun").exists()) {
        eprintln!(
            "skipping: needs root, /dev/net/tun, iproute2, wireguard-tools, nftables, conntrack"
        );
        return false;
    }
    true
}

/// A gateway under a temp root with its daemon running in a private network namespace.
struct Gateway {
    ns: String,
    dir: tempfile::TempDir,
    daemon: Option<Child>,
}

impl Gateway {
    fn start(tag: &str) -> Gateway {
        let ns = format!("{tag}{}", std::process::id() % 100000);
        let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        let ok = Command::new("ip").args(["netns", "add", &ns]).status();
        assert!(ok.unwrap().success());
        let mut gw = Gateway {
            ns,
            dir: tempfile::tempdir().unwrap(),
            daemon: None,
        };
        gw.sh(&["ip", "link", "set", "lo", "up"]);
        // The endpoint is an address of this namespace, so the endpoint check passes
        // without DNS.
        let out = gw.proton(&["init", "--endpoint", "127.0.0.1"]);
        assert!(out.status.success(), "init: {}", text(&out));
        // A tunnel name of our own: the userspace backend's UAPI socket lives in
        // /var/run/wireguard/<iface>.sock, shared by every namespace.
        let spec = gw.path("etc/proton/proton.toml");
        let s = std::fs::read_to_string(&spec).unwrap();
        assert!(s.contains("interface = \"wg0\""), "{s}");
        std::fs::write(
            &spec,
            s.replacen(
                "interface = \"wg0\"",
                &format!("interface = \"{}\"", gw.ns),
                1,
            ),
        )
        .unwrap();
        let daemon = Command::new("ip")
            .args(["netns", "exec", &gw.ns, BIN, "--root"])
            .arg(gw.dir.path())
            .args(["gateway", "run", "--backend", "userspace"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        gw.daemon = Some(daemon);
        let socket = gw.path("run/proton/admin.sock");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !(socket.exists() && gw.proton(&["status", "--json"]).status.success()) {
            assert!(
                Instant::now() < deadline,
                "the gateway daemon did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        gw
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn sh(&self, argv: &[&str]) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .args(argv)
            .output()
            .unwrap();
        assert!(out.status.success(), "{argv:?}: {}", text(&out));
    }

    fn proton(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns, BIN, "--root"])
            .arg(self.dir.path())
            .args(args)
            .env_remove("PROTON_ROOT")
            .output()
            .unwrap()
    }

    /// Installs the fake `k3s` where the K3s installer puts the real one, with the
    /// admin kubeconfig.
    fn install_k3s(&self) {
        let bin = self.path("usr/local/bin");
        std::fs::create_dir_all(bin.join("kube")).unwrap();
        std::fs::copy(fixture("fake-k3s"), bin.join("k3s")).unwrap();
        std::fs::set_permissions(bin.join("k3s"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(bin.join("k3s-version"), "v1.34.2+k3s1\n").unwrap();
        let kc = self.path("etc/rancher/k3s/k3s.yaml");
        std::fs::create_dir_all(kc.parent().unwrap()).unwrap();
        std::fs::copy(fixture("k3s.yaml"), kc).unwrap();
    }

    /// What the fake's `kubectl get KIND -o json` prints (`None`: the API is down).
    fn kube(&self, kind: &str, list: Option<Value>) {
        let p = self.path(&format!("usr/local/bin/kube/{kind}.json"));
        match list {
            Some(v) => std::fs::write(p, serde_json::to_string_pretty(&v).unwrap()).unwrap(),
            None => {
                let _ = std::fs::remove_file(p);
            }
        }
    }

    fn status_json(&self) -> Value {
        let out = self.proton(&["status", "--json"]);
        assert!(out.status.success(), "status: {}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `proton doctor --json` and `proton doctor`: (exit code, findings, table).
    fn doctor(&self) -> (i32, Vec<Value>, String) {
        let json = self.proton(&["doctor", "--json"]);
        let table = self.proton(&["doctor"]);
        let code = json.status.code().unwrap_or(-1);
        assert_eq!(table.status.code(), Some(code), "{}", text(&table));
        let report: Value = serde_json::from_slice(&json.stdout)
            .unwrap_or_else(|e| panic!("doctor --json: {e}: {}", text(&json)));
        let findings = report["findings"].as_array().unwrap().clone();
        (code, findings, text(&table))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &d.id().to_string()])
                .status();
            let _ = d.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

fn finding<'a>(findings: &'a [Value], check: &str) -> Vec<&'a Value> {
    findings.iter().filter(|f| f["check"] == check).collect()
}

/// The findings that warn or fail, for assertion messages.
fn not_passing(findings: &[Value]) -> Vec<String> {
    findings
        .iter()
        .filter(|f| f["level"] != "pass" && f["level"] != "skip")
        .map(|f| format!("{}: {} ({})", f["check"], f["level"], f["detail"]))
        .collect()
}

fn node(name: &str, server: bool, ready: &str, version: &str, ip: &str) -> Value {
    let mut labels = json!({"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"});
    if server {
        labels["node-role.kubernetes.io/control-plane"] = json!("true");
        labels["node-role.kubernetes.io/master"] = json!("true");
    }
    // K3s v1.34.2+k3s1: the agent's k3s.io/* address annotations become status.addresses
    // through the embedded cloud controller (k3s-io/k3s pkg/cloudprovider/instances.go);
    // flannel's public-ip is the flannel-iface (tunnel) address. The server's ExternalIP is
    // this test gateway's public address (its endpoint, 127.0.0.1).
    let mut addresses = vec![json!({"type": "InternalIP", "address": ip})];
    let mut annotations = json!({
        "flannel.alpha.coreos.com/backend-type": "vxlan",
        "flannel.alpha.coreos.com/kube-subnet-manager": "true",
        "flannel.alpha.coreos.com/public-ip": ip,
        "k3s.io/internal-ip": ip,
        "k3s.io/hostname": name
    });
    if server {
        addresses.push(json!({"type": "ExternalIP", "address": "127.0.0.1"}));
        annotations["k3s.io/external-ip"] = json!("127.0.0.1");
    }
    addresses.push(json!({"type": "Hostname", "address": name}));
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": annotations,
                     "uid": format!("uid-{name}")},
        "spec": {"podCIDR": "10.42.0.0/24", "providerID": format!("k3s://{name}")},
        "status": {
            "addresses": addresses,
            "conditions": [
                {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"},
                {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure"},
                if ready == "True" {
                    json!({"type": "Ready", "status": "True", "reason": "KubeletReady",
                           "message": "kubelet is posting ready status"})
                } else {
                    json!({"type": "Ready", "status": ready, "reason": "NodeStatusUnknown",
                           "message": "Kubelet stopped posting node status."})
                }
            ],
            "nodeInfo": {
                "kubeletVersion": version,
                "kubeProxyVersion": version,
                "containerRuntimeVersion": "containerd://2.1.5-k3s1",
                "operatingSystem": "linux",
                "architecture": "amd64"
            }
        }
    })
}

/// Traefik's pod on `node` and its ClusterIP Service, as chart 41.3.0 labels them
/// (traefik/traefik-helm-chart traefik/templates/_helpers.tpl `traefik.labelselector`).
fn traefik_pod(node: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "proton-traefik-6d9c7b8f5c-x2k8q", "namespace": "ingress-traefik",
                     "labels": {"app.kubernetes.io/name": "traefik",
                                "app.kubernetes.io/instance": "proton-traefik-ingress-traefik"}},
        "spec": {"nodeName": node, "nodeSelector": {"kubernetes.io/hostname": node},
                 "containers": [{"name": "proton-traefik", "ports": [
                     {"name": "web", "containerPort": 8000, "hostPort": 80, "protocol": "TCP"},
                     {"name": "websecure", "containerPort": 8443, "hostPort": 443, "protocol": "TCP"}]}]},
        "status": {"phase": "Running", "hostIP": "10.7.7.1", "podIP": "10.42.0.9"}
    })
}

fn traefik_service() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "proton-traefik", "namespace": "ingress-traefik",
                     "labels": {"app.kubernetes.io/name": "traefik",
                                "app.kubernetes.io/instance": "proton-traefik-ingress-traefik"}},
        "spec": {"type": "ClusterIP", "clusterIP": "10.43.118.20",
                 "ports": [{"name": "web", "port": 80, "protocol": "TCP", "targetPort": "web"},
                           {"name": "websecure", "port": 443, "protocol": "TCP", "targetPort": "websecure"}]},
        "status": {"loadBalancer": {}}
    })
}

fn list(items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items})
}

fn chart(name: &str, chart: &str, version: &str) -> Value {
    json!({
        "apiVersion": "helm.cattle.io/v1",
        "kind": "HelmChart",
        "metadata": {"name": name, "namespace": "kube-system"},
        "spec": {"chart": chart, "version": version, "targetNamespace": name,
                 "createNamespace": true},
        "status": {"jobName": format!("helm-install-{name}")}
    })
}

fn job(chart: &str, ok: bool) -> Value {
    let status = if ok {
        json!({"succeeded": 1, "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True"},
            {"type": "Complete", "status": "True"}]})
    } else {
        json!({"failed": 7, "conditions": [
            {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"},
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
             "message": "Job has reached the specified backoff limit"}]})
    };
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": format!("helm-install-{chart}"), "namespace": "kube-system"},
        "spec": {"backoffLimit": 1000},
        "status": status
    })
}

fn certificate(name: &str, ready: bool) -> Value {
    let status = if ready {
        json!({"conditions": [{"type": "Ready", "status": "True", "reason": "Ready",
                               "message": "Certificate is up to date and has not expired"}],
               "notAfter": "2027-02-20T10:00:00Z", "notBefore": "2026-11-22T10:00:00Z"})
    } else {
        json!({"conditions": [
            {"type": "Issuing", "status": "True", "reason": "DoesNotExist"},
            {"type": "Ready", "status": "False", "reason": "DoesNotExist",
             "message": "Issuing certificate as Secret does not exist"}]})
    };
    json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": name, "namespace": "web"},
        "spec": {"secretName": format!("{name}-tls"), "dnsNames": [format!("{name}.example.org")],
                 "issuerRef": {"kind": "ClusterIssuer", "name": "letsencrypt"}},
        "status": status
    })
}

const NODES: &str = "nodes";
const CHARTS: &str = "helmcharts.helm.cattle.io";
const JOBS: &str = "jobs";
const CERTS: &str = "certificates.cert-manager.io";

#[test]
fn doctor_exit_codes_and_the_cluster_in_status() {
    if !prerequisites() {
        return;
    }
    let gw = Gateway::start("pst");

    // A gateway before `proton apply` and before any invitation: K3s wanted but not
    // installed is a warning; the userspace backend has no UDP socket until its first
    // peer, which is how it is built, not a failure to restart.
    let st = gw.status_json();
    assert_eq!(st["cluster"]["state"], "not_running", "{st}");
    let (code, findings, table) = gw.doctor();
    let udp = finding(&findings, "udp port bound");
    assert_eq!(udp[0]["level"], "skip", "{table}");
    assert!(
        udp[0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("no peer yet"),
        "{table}"
    );
    let k3s = finding(&findings, "k3s service");
    assert_eq!(k3s[0]["level"], "warn", "{table}");
    assert_eq!(k3s[0]["fix"], "proton apply", "{table}");
    assert!(
        findings
            .iter()
            .all(|f| f["level"] != "fail" && (f["level"] != "warn" || f["fix"].is_string())),
        "{table}"
    );
    assert_eq!(code, 1, "warnings only: {table}");
    assert!(table.contains("[warn] k3s service"), "{table}");

    // K3s installed: a Ready server, a NotReady worker on a newer kubelet, an add-on
    // whose install job failed, a certificate not issued.
    gw.install_k3s();
    gw.kube(
        NODES,
        Some(list(vec![
            node("proton", true, "True", "v1.34.2+k3s1", "10.7.7.1"),
            node("home-1", false, "Unknown", "v1.35.0+k3s1", "10.7.7.2"),
        ])),
    );
    gw.kube("pods", Some(list(vec![traefik_pod("proton")])));
    gw.kube("services", Some(list(vec![traefik_service()])));
    gw.kube(
        CHARTS,
        Some(list(vec![
            chart("traefik", "traefik", "37.1.1"),
            chart("cert-manager", "cert-manager", "v1.19.1"),
        ])),
    );
    gw.kube(
        JOBS,
        Some(list(vec![job("traefik", true), job("cert-manager", false)])),
    );
    gw.kube(
        CERTS,
        Some(list(vec![
            certificate("blog", true),
            certificate("grafana", false),
        ])),
    );
    let st = gw.status_json();
    let c = &st["cluster"];
    assert_eq!(c["state"], "running", "{st}");
    assert_eq!(c["server_version"], "v1.34.2+k3s1");
    let nodes = c["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2, "{c}");
    assert_eq!(
        (
            &nodes[0]["name"],
            &nodes[0]["ready"],
            &nodes[0]["control_plane"]
        ),
        (&json!("proton"), &json!(true), &json!(true))
    );
    assert_eq!(
        (
            &nodes[1]["name"],
            &nodes[1]["ready"],
            &nodes[1]["kubelet_version"]
        ),
        (&json!("home-1"), &json!(false), &json!("v1.35.0+k3s1"))
    );
    assert_eq!(nodes[1]["internal_ip"], "10.7.7.2");
    let job_of = |name: &str| {
        c["addons"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("no add-on {name}: {c}"))["job"]
            .clone()
    };
    assert_eq!(job_of("traefik"), "succeeded");
    assert_eq!(job_of("cert-manager"), "failed");
    let certs = c["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 2);
    assert_eq!(
        (&certs[0]["name"], &certs[0]["ready"]),
        (&json!("blog"), &json!(true))
    );
    assert_eq!(certs[0]["not_after"], "2027-02-20T10:00:00Z");
    assert_eq!(
        (&certs[1]["name"], &certs[1]["ready"]),
        (&json!("grafana"), &json!(false))
    );
    assert_eq!(
        certs[1]["message"],
        "Issuing certificate as Secret does not exist"
    );
    assert_eq!(c["skew"][0]["node"], "home-1");
    assert_eq!(c["skew"][0]["newer"], true);

    let out = gw.proton(&["status"]);
    assert!(out.status.success(), "{}", text(&out));
    let human = String::from_utf8_lossy(&out.stdout).into_owned();
    let row = |first: &str| {
        human
            .lines()
            .find(|l| l.split_whitespace().next() == Some(first))
            .unwrap_or_else(|| panic!("no row for {first}:\n{human}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert!(human.contains("cluster: K3s v1.34.2+k3s1"), "{human}");
    assert_eq!(
        row("proton"),
        ["proton", "Ready", "v1.34.2+k3s1", "10.7.7.1", "server"]
    );
    assert_eq!(
        row("home-1"),
        ["home-1", "NotReady", "v1.35.0+k3s1", "10.7.7.2", "agent"]
    );
    assert!(
        human.contains("! home-1 runs v1.35.0+k3s1 but the server runs v1.34.2+k3s1"),
        "{human}"
    );
    assert_eq!(
        row("cert-manager"),
        ["cert-manager", "kube-system", "v1.19.1", "failed"]
    );
    assert_eq!(
        row("traefik"),
        ["traefik", "kube-system", "37.1.1", "succeeded"]
    );
    assert!(
        human.contains("certificate web/blog: ready, valid until 2027-02-20T10:00:00Z"),
        "{human}"
    );
    assert!(
        human.contains(
            "certificate web/grafana: NOT READY (Issuing certificate as Secret does not exist)"
        ),
        "{human}"
    );

    let (code, findings, table) = gw.doctor();
    let skew = finding(&findings, "k3s version skew");
    assert_eq!(skew.len(), 1, "{table}");
    assert_eq!(skew[0]["level"], "fail", "{table}");
    assert_eq!(
        skew[0]["detail"],
        "home-1 runs kubelet v1.35.0+k3s1, newer than the server v1.34.2+k3s1"
    );
    assert_eq!(
        skew[0]["fix"],
        "on home-1: curl -sfL https://get.k3s.io | INSTALL_K3S_VERSION=v1.34.2+k3s1 sh -s - agent"
    );
    assert!(table.contains("[FAIL] k3s version skew"), "{table}");
    assert!(
        table.contains("fix: on home-1: curl -sfL https://get.k3s.io | INSTALL_K3S_VERSION=v1.34.2+k3s1 sh -s - agent"),
        "{table}"
    );
    let level = |check: &str| finding(&findings, check)[0]["level"].clone();
    assert_eq!(level("k3s nodes"), "warn", "{table}");
    assert!(
        table.contains("[warn] k3s nodes              NotReady: home-1"),
        "{table}"
    );
    assert_eq!(level("k3s add-ons"), "fail", "{table}");
    assert!(
        table.contains(
            "fix: read why: k3s kubectl -n kube-system logs job/helm-install-cert-manager"
        ),
        "{table}"
    );
    assert_eq!(level("certificates"), "warn", "{table}");
    assert!(
        table.contains("not ready: web/grafana (Issuing certificate as Secret does not exist)"),
        "{table}"
    );
    // Not the real root: no systemd runs this tree's K3s; its answering API stands in.
    assert_eq!(
        finding(&findings, "k3s service")[0]["level"],
        "pass",
        "{table}"
    );
    assert_eq!(code, 2, "a failure: {table}");

    // The API server down: both K3s checks fail with the restart.
    gw.kube(NODES, None);
    let st = gw.status_json();
    assert_eq!(st["cluster"]["state"], "unreachable", "{st}");
    assert!(
        st["cluster"]["error"]
            .as_str()
            .unwrap()
            .contains("connection to the server 127.0.0.1:6443 was refused"),
        "{st}"
    );
    let (code, findings, table) = gw.doctor();
    let service = finding(&findings, "k3s service");
    assert_eq!(service[0]["level"], "fail", "{table}");
    assert_eq!(
        service[0]["detail"], "k3s is not answering its API",
        "{table}"
    );
    assert!(
        service[0]["fix"]
            .as_str()
            .unwrap()
            .starts_with("systemctl restart k3s")
    );
    assert_eq!(code, 2, "{table}");

    // Healthy: every node Ready on the server's version, every job done.
    gw.kube(
        NODES,
        Some(list(vec![
            node("proton", true, "True", "v1.34.2+k3s1", "10.7.7.1"),
            node("home-1", false, "True", "v1.34.2+k3s1", "10.7.7.2"),
        ])),
    );
    gw.kube(
        JOBS,
        Some(list(vec![job("traefik", true), job("cert-manager", true)])),
    );
    gw.kube(CERTS, Some(list(vec![certificate("blog", true)])));
    let st = gw.status_json();
    assert_eq!(st["cluster"]["skew"], json!([]), "{st}");
    let (code, findings, table) = gw.doctor();
    let skew = finding(&findings, "k3s version skew");
    assert_eq!(skew[0]["level"], "pass", "{table}");
    assert_eq!(
        skew[0]["detail"],
        "2 node(s), all compatible with the server v1.34.2+k3s1"
    );
    for check in [
        "k3s service",
        "k3s nodes",
        "k3s add-ons",
        "certificates",
        "k3s node addresses",
        "flannel public-ip",
        "traefik",
        "traefik address",
    ] {
        assert_eq!(
            finding(&findings, check)[0]["level"],
            "pass",
            "{check}: {table}"
        );
    }
    assert_eq!(code, 0, "all pass: {:?}\n{table}", not_passing(&findings));
    assert!(table.contains("0 warnings, 0 failures"), "{table}");

    // An invited machine that never connected: the port is bound now (with the first
    // peer), and the silent peer is the only warning.
    let out = gw.proton(&["invite", "home-2", "--no-qr"]);
    assert!(out.status.success(), "{}", text(&out));
    let deadline = Instant::now() + Duration::from_secs(20);
    let (code, findings, table) = loop {
        let (code, findings, table) = gw.doctor();
        if finding(&findings, "udp port bound")[0]["level"] == "pass" {
            break (code, findings, table);
        }
        assert!(Instant::now() < deadline, "udp/51820 never bound: {table}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let silent = finding(&findings, "silent peers");
    assert_eq!(silent[0]["level"], "warn", "{table}");
    assert!(
        silent[0]["detail"]
            .as_str()
            .unwrap()
            .contains("home-2 (never)"),
        "{table}"
    );
    assert_eq!(not_passing(&findings).len(), 1, "{table}");
    assert_eq!(code, 1, "warnings only: {table}");
}
