//! Unit tests: validation errors, names, the one-source allow-list, removal planning.

use super::*;
use crate::objects::Object;

fn defaults() -> AddonsParams {
    AddonsParams::defaults("gateway", "10.7.7.0/24".parse().unwrap(), "ops@example.org")
}

fn file<'a>(files: &'a [ManifestFile], name: &str) -> &'a ManifestFile {
    files.iter().find(|f| f.name == name).unwrap()
}

#[test]
fn allowlist_range_is_the_cidr_text() {
    for text in ["10.7.7.0/24", "10.8.0.0/16", "192.168.77.0/28"] {
        let cidr: Cidr = text.parse().unwrap();
        let Object::Middleware(m) = traefik::allowlist(&cidr) else {
            panic!("not a Middleware")
        };
        assert_eq!(m.spec.ip_allow_list.source_range, vec![cidr.to_string()]);
        assert_eq!(m.spec.ip_allow_list.source_range, vec![text.to_owned()]);
        let mut p = defaults();
        p.vpn_cidr = cidr;
        let files = render_manifests(&p).unwrap();
        let routes = file(&files, "proton-traefik-routes.yaml");
        assert!(
            routes
                .yaml
                .contains(&format!("sourceRange:\n    - {text}\n"))
        );
    }
}

#[test]
fn file_names_are_ours_and_rfc1123() {
    for name in FILE_NAMES {
        assert!(name.starts_with("proton-"), "{name}");
        let stem = name.strip_suffix(".yaml").unwrap();
        assert!(is_label(stem), "{name} is not an RFC 1123 label");
        assert!(!PACKAGED_COMPONENT_FILES.contains(&name), "{name} is K3s's");
    }
    // Whatever is turned off, the same files (never a packaged component's) are written.
    let mut off = defaults();
    off.ingress = None;
    off.tls = None;
    off.dashboard = None;
    for p in [defaults(), off] {
        let names: Vec<_> = render_manifests(&p)
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(names, FILE_NAMES);
        assert!(
            names
                .iter()
                .all(|n| !PACKAGED_COMPONENT_FILES.contains(&n.as_str()))
        );
    }
}

#[test]
fn turning_addons_off_empties_their_files_and_plans_removal() {
    let before = render_manifests(&defaults()).unwrap();
    let mut p = defaults();
    p.dashboard = None;
    let after = render_manifests(&p).unwrap();
    let dash = file(&after, "proton-dashboard.yaml");
    assert!(files::object_refs(dash).unwrap().is_empty());
    assert!(!dash.yaml.contains("kind:"));
    let gone: Vec<String> = plan_removal(&before, &after)
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        gone,
        [
            "Secret kube-system/proton-admin-token",
            "ClusterRoleBinding proton-admin",
            "ServiceAccount kube-system/proton-admin",
            "HelmChart kube-system/proton-headlamp",
        ]
    );
    // Nothing changes: nothing to remove. Everything off: everything goes.
    assert!(plan_removal(&before, &before).unwrap().is_empty());
    p.ingress = None;
    p.tls = None;
    let none = render_manifests(&p).unwrap();
    let all = plan_removal(&before, &none).unwrap();
    assert_eq!(all.len(), 1 + 1 + 1 + 2 + 4);
    assert_eq!(
        all.last().unwrap().name,
        "proton-traefik",
        "charts go after routes"
    );
}

#[test]
fn switching_dashboard_kind_removes_the_old_chart() {
    let before = render_manifests(&defaults()).unwrap();
    let mut p = defaults();
    p.dashboard = Some(DashboardParams {
        kind: DashboardKind::KubernetesDashboard,
        chart_version: KUBERNETES_DASHBOARD_DEFAULT_VERSION.into(),
        host: None,
    });
    let gone = plan_removal(&before, &render_manifests(&p).unwrap()).unwrap();
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].name, "proton-headlamp");
}

#[test]
fn expose_parses_the_service_and_routes_it() {
    let objs = expose(
        "blog",
        "blog.example.org",
        "web/blog:8080",
        true,
        PROD_ISSUER,
    )
    .unwrap();
    let yaml = to_yaml(&objs).unwrap();
    assert!(yaml.contains("namespace: web"));
    assert!(yaml.contains("match: Host(`blog.example.org`)"));
    assert!(yaml.contains("name: vpn-allowlist"));
    assert!(yaml.contains("port: 8080"));
    assert!(yaml.contains("secretName: cert-blog"));
    let public = to_yaml(
        &expose(
            "blog",
            "blog.example.org",
            "web/blog:8080",
            false,
            PROD_ISSUER,
        )
        .unwrap(),
    )
    .unwrap();
    assert!(!public.contains("vpn-allowlist"));
}

#[test]
fn bad_service_arguments_say_what_is_wrong() {
    for (arg, says) in [
        ("blog:8080", "no namespace"),
        ("web/blog", "no port"),
        ("web/blog:http", "port is not a number"),
        ("web/blog:0", "port is not a number"),
        ("web/blog:70000", "port is not a number"),
        ("Web/blog:80", "namespace is not a valid"),
        ("web/blog_1:80", "service name is not a valid"),
    ] {
        let err = arg.parse::<ServiceTarget>().unwrap_err().to_string();
        assert!(err.contains(says), "{arg}: {err}");
        assert!(err.contains("NAMESPACE/SERVICE:PORT"), "{err}");
    }
    assert!(expose("Blog", "blog.example.org", "web/blog:80", true, PROD_ISSUER).is_err());
    assert!(expose("blog", "*.example.org", "web/blog:80", true, PROD_ISSUER).is_err());
    assert!(expose("blog", "localhost", "web/blog:80", true, PROD_ISSUER).is_err());
}

#[test]
fn params_are_checked() {
    let mut p = defaults();
    p.tls.as_mut().unwrap().acme_email = "not-an-email".into();
    assert!(matches!(render_manifests(&p), Err(AddonsError::Email(_))));

    let mut p = defaults();
    p.ingress = None;
    let err = render_manifests(&p).unwrap_err().to_string();
    assert!(err.contains("tls needs ingress"), "{err}");

    let mut p = defaults();
    p.tls = None;
    p.ingress.as_mut().unwrap().dashboard_host = Some("traefik.example.org".into());
    assert!(matches!(
        render_manifests(&p),
        Err(AddonsError::Requires { .. })
    ));

    let mut p = defaults();
    p.ingress.as_mut().unwrap().class = "Traefik Class".into();
    assert!(matches!(
        render_manifests(&p),
        Err(AddonsError::Name { .. })
    ));
}

#[test]
fn extra_ports_are_checked() {
    let port = |name: &str, port, exposed_port| ExtraPort {
        name: name.into(),
        port,
        exposed_port,
        protocol: Protocol::Tcp,
    };
    for (bad, says) in [
        (vec![port("web", 9000, 9000)], "already an entry point"),
        (
            vec![port("a-very-long-port-name", 9000, 9000)],
            "1-15 lowercase",
        ),
        (vec![port("rtmp", 80, 1935)], "privileged"),
        (vec![port("rtmp", 8000, 1935)], "used by Traefik"),
        (vec![port("rtmp", 8935, 443)], "taken by web/websecure"),
        (
            vec![port("a", 9000, 1000), port("b", 9000, 1001)],
            "already used by `a`",
        ),
        (
            vec![port("a", 9000, 1000), port("a", 9001, 1001)],
            "already an entry point",
        ),
    ] {
        let mut p = defaults();
        p.ingress.as_mut().unwrap().extra_ports = bad;
        let err = render_manifests(&p).unwrap_err().to_string();
        assert!(err.contains(says), "{err}");
    }
}

#[test]
fn traefik_values_pin_to_the_gateway_and_keep_client_ips() {
    let v = traefik::values("gw-1", defaults().ingress.as_ref().unwrap()).unwrap();
    assert_eq!(v.node_selector["kubernetes.io/hostname"], "gw-1");
    // Host ports on the gateway: portmap DNAT keeps the client's source address, for
    // the public address and the tunnel address alike.
    assert_eq!(v.ports["web"].host_port, Some(80));
    assert_eq!(v.ports["websecure"].host_port, Some(443));
    // Never a ServiceLB Service: klipper-lb masquerades (k3s-io/klipper-lb `entry`).
    assert_eq!(v.service.type_, "ClusterIP");
    // One pod per node with host ports: the old pod must go before the new one starts.
    assert_eq!(v.update_strategy.rolling_update.max_surge, 0);
    assert_eq!(v.update_strategy.rolling_update.max_unavailable, 1);
    assert!(GATEWAY_NODE_LABELS.contains(&("svccontroller.k3s.cattle.io/lbpool", LB_POOL)));
    assert!(GATEWAY_NODE_LABELS.contains(&("svccontroller.k3s.cattle.io/enablelb", "true")));
    assert_eq!(
        v.providers.kubernetes_ingress.ingress_class,
        DEFAULT_INGRESS_CLASS
    );
    assert_eq!(v.ports["web"].allow_acme_bypass, Some(true));
    assert!(
        !v.ingress_route.dashboard.enabled,
        "Traefik's dashboard is never routed by the chart"
    );
}

/// ServiceLB reads its keys from a Service's *labels* (k3s-io/k3s
/// pkg/cloudprovider/servicelb.go@v1.34.2+k3s1: `svc.Labels[daemonsetNodePoolLabel]`);
/// a `svccontroller.k3s.cattle.io/*` annotation would be silently ignored. No rendered
/// object carries one, and Traefik's Service is no ServiceLB Service at all.
#[test]
fn no_servicelb_key_is_written_as_an_annotation() {
    let files = render_manifests(&defaults()).unwrap();
    for f in &files {
        for line in f.yaml.lines() {
            assert!(
                !line
                    .trim_start()
                    .starts_with("svccontroller.k3s.cattle.io/"),
                "{}: {line}",
                f.name
            );
        }
    }
    let v = traefik::values("gw-1", defaults().ingress.as_ref().unwrap()).unwrap();
    let yaml = serde_norway::to_string(&v).unwrap();
    assert!(
        !yaml.contains("LoadBalancer") && !yaml.contains("annotations"),
        "{yaml}"
    );
}

#[test]
fn token_secret_ref_matches_the_rendered_secret() {
    let (ns, name) = dashboard_token_secret_ref();
    let files = render_manifests(&defaults()).unwrap();
    let refs = files::object_refs(file(&files, "proton-dashboard.yaml")).unwrap();
    assert!(
        refs.iter()
            .any(|r| r.kind == "Secret" && r.namespace.as_deref() == Some(ns) && r.name == name)
    );
}
