use super::*;
use crate::kube::{ClusterView, NodeInfo, Skew};

#[test]
fn every_failure_and_warning_carries_a_fix() {
    let findings = [
        wireguard(false, false, Backend::Auto),
        wireguard(false, true, Backend::Kernel),
        forwarding(Some("0"), true),
        forwarding(Some("0"), false),
        udp_bound(51820, false, false),
        fwmark("wg0", 0x4000, Ok(None)),
        mtu("wg0", None, 1420, None, None),
        mtu("wg0", Some(1420), 1420, Some(("eth0".into(), 1450)), None),
        mtu(
            "wg0",
            Some(1420),
            1420,
            Some(("eth0".into(), 1500)),
            Some(1450),
        ),
        conntrack(true, false),
        k3s_service("k3s", true, Some("failed")),
        endpoint(
            "vps.example.com",
            Err("no such host".into()),
            |_| true,
            None,
        ),
    ];
    for f in &findings {
        assert!(f.level >= Level::Warn, "{f:?}");
        assert!(f.fix.as_deref().is_some_and(|x| !x.is_empty()), "{f:?}");
    }
    assert_eq!(
        findings[2].level,
        Level::Fail,
        "the gateway needs forwarding"
    );
    assert_eq!(findings[3].level, Level::Warn, "a worker only warns");
    assert!(
        findings[2]
            .fix
            .as_deref()
            .unwrap()
            .starts_with("sysctl -w net.ipv4.ip_forward=1")
    );
    assert_eq!(
        findings[7].fix.as_deref().unwrap(),
        "set network.mtu = 1370 (MTU in the wg-quick file on workers) and restart the tunnel"
    );
}

#[test]
fn healthy_inputs_pass() {
    assert_eq!(wireguard(false, true, Backend::Auto).level, Level::Pass);
    assert_eq!(forwarding(Some("1"), true).level, Level::Pass);
    assert_eq!(udp_bound(51820, true, false).level, Level::Pass);
    // A userspace gateway without peers has no UDP socket yet; restarting won't bind one.
    assert_eq!(udp_bound(51820, false, true).level, Level::Skip);
    assert_eq!(fwmark("wg0", 0x4000, Ok(Some(0x4000))).level, Level::Pass);
    assert_eq!(fwmark("wg0", 0, Ok(None)).level, Level::Skip);
    assert_eq!(
        mtu(
            "wg0",
            Some(1420),
            1420,
            Some(("eth0".into(), 1500)),
            Some(1370)
        )
        .level,
        Level::Pass
    );
    assert_eq!(k3s_service("k3s", false, None).level, Level::Skip);
    assert_eq!(k3s_service("k3s", true, None).level, Level::Warn);
    let local = |ip: IpAddr| ip == "203.0.113.10".parse::<IpAddr>().unwrap();
    assert_eq!(
        endpoint(
            "vps.example.com",
            Ok(vec!["203.0.113.10".parse().unwrap()]),
            local,
            None
        )
        .level,
        Level::Pass
    );
    let elsewhere = endpoint(
        "vps.example.com",
        Ok(vec!["198.51.100.1".parse().unwrap()]),
        local,
        None,
    );
    assert_eq!(elsewhere.level, Level::Warn);
    // Behind a 1:1 NAT the public address is not local, but the spec names it.
    assert_eq!(
        endpoint(
            "vps.example.com",
            Ok(vec!["198.51.100.1".parse().unwrap()]),
            local,
            Some("198.51.100.1".parse().unwrap())
        )
        .level,
        Level::Pass
    );
}

#[test]
fn skew_and_exit_codes() {
    let node = |n: &str, v: &str, cp| NodeInfo {
        name: n.into(),
        ready: true,
        control_plane: cp,
        kubelet_version: v.into(),
        internal_ip: None,
        external_ips: vec![],
        flannel_public_ip: None,
    };
    let cluster = ClusterView::Running {
        server_version: Some("v1.31.4+k3s1".into()),
        nodes: vec![
            node("proton", "v1.31.4+k3s1", true),
            node("home-1", "v1.32.0+k3s1", false),
        ],
        addons: vec![],
        certificates: vec![],
        skew: vec![Skew {
            node: "home-1".into(),
            kubelet: "v1.32.0+k3s1".into(),
            server: "v1.31.4+k3s1".into(),
            newer: true,
        }],
        traefik: None,
    };
    let f = version_skew(&cluster);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].level, Level::Fail);
    assert!(
        f[0].fix
            .as_deref()
            .unwrap()
            .contains("INSTALL_K3S_VERSION=v1.31.4+k3s1")
    );
    let not_running = version_skew(&ClusterView::NotRunning {
        reason: "no kubeconfig".into(),
    });
    assert_eq!(not_running[0].level, Level::Skip);

    let mut report = Report {
        role: "gateway",
        findings: vec![forwarding(Some("1"), true)],
    };
    assert_eq!(report.exit_code(), 0);
    report.findings.push(conntrack(true, false));
    assert_eq!(report.exit_code(), 1);
    report.findings.push(forwarding(Some("0"), true));
    assert_eq!(report.exit_code(), 2);
    let text = report.render();
    assert!(text.contains("[FAIL] ipv4 forwarding"), "{text}");
    assert!(
        text.contains("fix: sysctl -w net.ipv4.ip_forward=1"),
        "{text}"
    );
}

#[test]
fn cluster_health_flags_notready_nodes_failed_jobs_and_unready_certificates() {
    let fixture = |name: &str| -> serde_json::Value {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let nodes = crate::kube::parse_nodes(&fixture("nodes.json"));
    let cluster = ClusterView::Running {
        server_version: crate::kube::server_version(&nodes),
        skew: crate::kube::version_skew(&nodes),
        addons: crate::kube::parse_addons(&fixture("helmcharts.json"), &fixture("jobs.json")),
        certificates: crate::kube::parse_certificates(&fixture("certificates.json")),
        nodes,
        traefik: None,
    };
    let f = cluster_health(&cluster);
    let levels: Vec<_> = f.iter().map(|x| (x.check.as_str(), x.level)).collect();
    assert_eq!(
        levels,
        [
            ("k3s nodes", Level::Warn),
            ("k3s add-ons", Level::Fail),
            ("certificates", Level::Warn)
        ]
    );
    assert_eq!(f[0].detail, "NotReady: home-2");
    assert!(
        f[1].fix
            .as_deref()
            .unwrap()
            .starts_with("read why: k3s kubectl -n kube-system logs job/helm-install-cert-manager"),
        "{f:?}"
    );
    assert!(f.iter().all(|x| x.fix.is_some()));
    assert!(
        cluster_health(&ClusterView::NotRunning {
            reason: "no kubeconfig".into()
        })
        .is_empty()
    );
}

/// The networking checks on upstream-shaped `kubectl -o json` (tests/fixtures/SOURCES.md):
/// healthy JSON passes, each broken case fails with a fix.
mod cluster_network_checks {
    use super::*;
    use crate::kube::{parse_nodes, parse_traefik, server_version, version_skew};
    use serde_json::{Value, json};

    fn fixture(name: &str) -> Value {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    struct Json {
        nodes: Value,
        pods: Value,
        services: Value,
    }

    fn healthy() -> Json {
        Json {
            nodes: fixture("net-nodes.json"),
            pods: fixture("net-pods.json"),
            services: fixture("net-services.json"),
        }
    }

    fn view(j: &Json) -> ClusterView {
        let nodes = parse_nodes(&j.nodes);
        ClusterView::Running {
            server_version: server_version(&nodes),
            skew: version_skew(&nodes),
            addons: vec![],
            certificates: vec![],
            traefik: Some(parse_traefik(&j.pods, &j.services)),
            nodes,
        }
    }

    fn run(j: &Json) -> Vec<Finding> {
        let cidr = proton_core::net::Cidr::new("10.7.7.0/24".parse().unwrap()).unwrap();
        cluster_network(&view(j), &cidr, Some("203.0.113.7".parse().unwrap()), true)
    }

    fn level(findings: &[Finding], check: &str) -> Level {
        findings
            .iter()
            .find(|f| f.check == check)
            .unwrap_or_else(|| panic!("no {check} in {findings:#?}"))
            .level
    }

    #[test]
    fn healthy_cluster_passes() {
        let f = run(&healthy());
        assert_eq!(f.len(), 4, "{f:#?}");
        for check in [
            "k3s node addresses",
            "flannel public-ip",
            "traefik",
            "traefik address",
        ] {
            assert_eq!(level(&f, check), Level::Pass, "{check}: {f:#?}");
        }
    }

    fn fails(j: &Json, check: &str) {
        let f = run(j);
        let found = f.iter().find(|x| x.check == check).unwrap();
        assert_eq!(found.level, Level::Fail, "{found:?}");
        assert!(found.fix.as_deref().is_some_and(|x| !x.is_empty()));
        // Only that check fails.
        for other in f.iter().filter(|x| x.check != check) {
            assert_eq!(other.level, Level::Pass, "{other:?}");
        }
    }

    #[test]
    fn an_internal_ip_outside_the_tunnel_fails() {
        // A worker registered with its LAN address (node-ip not set to the tunnel).
        let mut j = healthy();
        j.nodes["items"][1]["status"]["addresses"][0]["address"] = json!("192.168.1.20");
        j.nodes["items"][1]["metadata"]["annotations"]["flannel.alpha.coreos.com/public-ip"] =
            json!("192.168.1.20");
        let f = run(&j);
        assert_eq!(level(&f, "k3s node addresses"), Level::Fail);
        assert!(
            f.iter().any(|x| x.detail.contains("home-1 (192.168.1.20)")),
            "{f:#?}"
        );
    }

    #[test]
    fn a_flannel_public_ip_off_the_tunnel_fails() {
        // flannel-external-ip (or a wrong flannel-iface): VXLAN would go over the internet.
        let mut j = healthy();
        j.nodes["items"][0]["metadata"]["annotations"]["flannel.alpha.coreos.com/public-ip"] =
            json!("203.0.113.7");
        fails(&j, "flannel public-ip");
        let mut j = healthy();
        j.nodes["items"][1]["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .remove("flannel.alpha.coreos.com/public-ip");
        fails(&j, "flannel public-ip");
    }

    #[test]
    fn traefik_off_the_gateway_fails() {
        let mut j = healthy();
        j.pods["items"][0]["spec"]["nodeName"] = json!("home-1");
        let f = run(&j);
        assert_eq!(level(&f, "traefik"), Level::Fail, "{f:#?}");
    }

    #[test]
    fn traefik_address_not_the_public_address_fails() {
        // disable-cloud-controller: nothing sets the ExternalIP.
        let mut j = healthy();
        j.nodes["items"][0]["status"]["addresses"]
            .as_array_mut()
            .unwrap()
            .retain(|a| a["type"] != "ExternalIP");
        fails(&j, "traefik address");
        // A ServiceLB Service advertising the tunnel address (the old design's failure).
        let mut j = healthy();
        j.services["items"][0]["spec"]["type"] = json!("LoadBalancer");
        j.services["items"][0]["status"]["loadBalancer"] =
            json!({"ingress": [{"ip": "10.7.7.1", "ipMode": "VIP"}]});
        fails(&j, "traefik address");
        // ... and one advertising the public address passes.
        j.services["items"][0]["status"]["loadBalancer"] =
            json!({"ingress": [{"ip": "203.0.113.7", "ipMode": "VIP"}]});
        assert_eq!(level(&run(&j), "traefik address"), Level::Pass);
    }

    #[test]
    fn no_traefik_pod_warns_and_ingress_off_skips_traefik() {
        let mut j = healthy();
        j.pods["items"] = json!([]);
        assert_eq!(level(&run(&j), "traefik"), Level::Warn);
        let cidr = proton_core::net::Cidr::new("10.7.7.0/24".parse().unwrap()).unwrap();
        let f = cluster_network(&view(&healthy()), &cidr, None, false);
        assert!(f.iter().all(|x| !x.check.starts_with("traefik")), "{f:#?}");
        let not_running = ClusterView::NotRunning {
            reason: "no kubeconfig".into(),
        };
        assert!(cluster_network(&not_running, &cidr, None, true).is_empty());
    }
}

/// `nft -j list table inet proton` (nftables 1.0.6), cut to the sets and two rules.
const PROTON_TABLE_JSON: &str = r#"{"nftables": [{"set": {"family": "inet", "name": "workers", "table": "proton", "type": "ipv4_addr", "handle": 8, "elem": ["10.7.7.2"]}}, {"set": {"family": "inet", "name": "clients", "table": "proton", "type": "ipv4_addr", "handle": 9}}, {"rule": {"family": "inet", "table": "proton", "chain": "from_tunnel", "handle": 20, "comment": "the invitee fence: not an active peer", "expr": [{"drop": null}]}}, {"rule": {"family": "inet", "table": "proton", "chain": "input", "handle": 42, "comment": "tunnel and loopback only", "expr": [{"drop": null}]}}]}"#;

fn proton_table_sample() -> ProtonTable {
    ProtonTable::parse(&serde_json::from_str(PROTON_TABLE_JSON).unwrap())
}

#[test]
fn the_proton_table_is_read_from_nft_json() {
    let t = proton_table_sample();
    assert_eq!(t.admitted, vec!["10.7.7.2".to_string()]);
    assert!(t.comments.contains(&"tunnel and loopback only".to_string()));
    let text = "table inet proton {\n\tchain input {\n\t\ttcp dport { 6443 } counter packets 0 bytes 0 drop comment \"tunnel and loopback only\"\n\t}\n}\n";
    assert_eq!(
        ProtonTable::parse_text(text).comments,
        vec!["tunnel and loopback only".to_string()]
    );
    assert!(
        ProtonTable::parse_text("table inet proton {\n\tflags owner\n}\n")
            .comments
            .is_empty()
    );
}

#[test]
fn doctor_fails_when_the_firewall_table_is_missing_or_incomplete() {
    let missing = firewall_table(Ok(None));
    assert_eq!(missing.level, Level::Fail);
    assert!(missing.detail.contains("missing"), "{missing:?}");
    assert!(missing.fix.as_deref().unwrap().contains("proton apply"));
    // The sample lacks the VXLAN, NodePort and NAT rules.
    let partial = firewall_table(Ok(Some(&proton_table_sample())));
    assert_eq!(partial.level, Level::Fail);
    assert!(partial.detail.contains("flannel VXLAN"), "{partial:?}");
    let mut full = proton_table_sample();
    full.comments.extend(
        [
            "flannel VXLAN: workers over the tunnel only",
            "NodePorts: tunnel, loopback and pods only (DNATed before input)",
            "full-tunnel clients reach the internet",
        ]
        .map(String::from),
    );
    assert_eq!(firewall_table(Ok(Some(&full))).level, Level::Pass);
    assert_eq!(firewall_table(Err("x".into())).level, Level::Warn);
}

#[test]
fn doctor_fails_when_the_invitee_fence_is_not_in_place() {
    let t = proton_table_sample();
    let pending = vec!["10.7.7.9".to_string()];
    assert_eq!(invitee_fence(Ok(Some(&t)), &pending).level, Level::Pass);
    let gone = invitee_fence(Ok(None), &pending);
    assert_eq!(gone.level, Level::Fail);
    assert!(gone.detail.contains("1 pending invitation"), "{gone:?}");
    // An invitee's address admitted by a set is a hole in the fence.
    let admitted = invitee_fence(Ok(Some(&t)), &["10.7.7.2".to_string()]);
    assert_eq!(admitted.level, Level::Fail);
    let mut flushed = t.clone();
    flushed
        .comments
        .retain(|c| !c.starts_with("the invitee fence"));
    assert_eq!(
        invitee_fence(Ok(Some(&flushed)), &pending).level,
        Level::Fail
    );
}
