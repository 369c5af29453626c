//! The add-on commands through the real binary in a temp root: `proton expose` (files in
//! K3s's auto-deploy directory), `proton dashboard token` (against a stand-in Kubernetes
//! API that requires the kubeconfig's client certificate), and the one-source-of-truth
//! check that the allow-list, the firewall and client configs all take `network.cidr`.

use proton_test_support::cli::proton;

use proton_test_support::kube_api;

use base64::Engine;
use proton_addons::{AddonsParams, DashboardKind, DashboardParams, render_manifests};
use proton_core::spec::Spec;
use std::path::Path;
use std::process::Output;

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_proton");

const MANIFESTS: &str = "var/lib/rancher/k3s/server/manifests";

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failure a person can act on: exit `code`, exactly one `error:` line first.
fn assert_fails(o: &Output, code: i32, needle: &str) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "{err}");
    let first = err.lines().next().unwrap_or("");
    assert!(
        first.starts_with("error: ") && first.contains(needle),
        "{err}"
    );
    assert_eq!(err.matches("error:").count(), 1, "{err}");
    assert!(o.stdout.is_empty(), "nothing on stdout: {}", stdout(o));
    err
}

fn init(root: &Path, cidr: &str) {
    let o = proton(
        BIN,
        root,
        &["init", "--endpoint", "vps.example.com", "--cidr", cidr],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

fn edit_spec(root: &Path, from: &str, to: &str) {
    let p = root.join("etc/proton/proton.toml");
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains(from), "{text}");
    std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn expose_writes_one_auto_deploy_file_and_remove_empties_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    init(root, "10.7.7.0/24");
    let file = root.join(MANIFESTS).join("proton-expose-blog.yaml");

    let args = [
        "expose",
        "blog",
        "--host",
        "blog.example.org",
        "--service",
        "web/blog:8080",
        "--vpn-only",
    ];
    // --dry-run prints exactly what would be written, and writes nothing.
    let mut dry = args.to_vec();
    dry.push("--dry-run");
    let o = proton(BIN, root, &dry);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!root.join(MANIFESTS).exists());
    let expected = proton_addons::expose_manifest(
        "blog",
        "blog.example.org",
        "web/blog:8080",
        true,
        "letsencrypt-prod",
    )
    .unwrap();
    assert_eq!(stdout(&o), expected.yaml);

    let o = proton(BIN, root, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    // The very objects proton-addons' schema tests validate.
    assert_eq!(std::fs::read_to_string(&file).unwrap(), expected.yaml);
    assert!(expected.yaml.contains("name: vpn-allowlist"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Public this time: same file, no allow-list.
    let o = proton(BIN, root, &args[..6]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("vpn-allowlist") && text.contains("kind: Certificate"));

    // The certificate comes from the spec's tls.default_issuer.
    edit_spec(
        root,
        "default_issuer = \"letsencrypt-prod\"",
        "default_issuer = \"letsencrypt-staging\"",
    );
    let o = proton(BIN, root, &args[..6]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("name: letsencrypt-staging"), "{text}");

    let o = proton(BIN, root, &["expose", "blog", "--remove"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("IngressRoute web/blog, Certificate web/blog"),
        "{}",
        stderr(&o)
    );
    let text = std::fs::read_to_string(&file).expect("the file stays, so K3s prunes");
    assert!(text.lines().all(|l| l.starts_with('#')), "{text}");

    let o = proton(BIN, root, &["expose", "nothing", "--remove"]);
    assert_fails(&o, 2, "nothing is exposed as `nothing`");
    assert!(
        !root
            .join(MANIFESTS)
            .join("proton-expose-nothing.yaml")
            .exists()
    );
}

#[test]
fn expose_refuses_bad_input_with_one_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    init(root, "10.7.7.0/24");
    let cases: [(&[&str], &str); 6] = [
        (
            &["Blog", "--host", "b.example.org", "--service", "web/b:80"],
            "not a valid Kubernetes name",
        ),
        (
            &["blog", "--host", "localhost", "--service", "web/b:80"],
            "not a valid DNS name",
        ),
        (
            &["blog", "--host", "*.example.org", "--service", "web/b:80"],
            "not a valid DNS name",
        ),
        (
            &["blog", "--host", "b.example.org", "--service", "web/b"],
            "no port",
        ),
        (
            &["blog", "--host", "b.example.org", "--service", "b:80"],
            "no namespace",
        ),
        (
            &["blog", "--host", "b.example.org", "--service", "web/b:0"],
            "port is not a number",
        ),
    ];
    for (args, needle) in cases {
        let mut full = vec!["expose"];
        full.extend(args);
        assert_fails(&proton(BIN, root, &full), 2, needle);
    }
    // Ingress off in the spec: nothing to route through.
    edit_spec(
        root,
        "[ingress]\nenabled = true",
        "[ingress]\nenabled = false",
    );
    edit_spec(root, "[tls]\nenabled = true", "[tls]\nenabled = false");
    let o = proton(
        BIN,
        root,
        &[
            "expose",
            "blog",
            "--host",
            "b.example.org",
            "--service",
            "web/b:80",
        ],
    );
    assert_fails(&o, 1, "needs ingress and tls enabled");
    assert!(!root.join(MANIFESTS).exists(), "nothing written");
}

/// Where the rendered manifests put the dashboard's token: the Secret of type
/// service-account-token (so the command and `apply` can never disagree).
fn token_secret_path(kind: DashboardKind) -> String {
    let mut p = AddonsParams::defaults("proton", "10.7.7.0/24".parse().unwrap(), "me@example.org");
    p.dashboard = Some(DashboardParams {
        kind,
        chart_version: kind.default_chart_version().into(),
        host: None,
    });
    let files = render_manifests(&p).unwrap();
    let yaml = files.iter().map(|f| f.yaml.as_str()).collect::<String>();
    let doc = yaml
        .split("---\n")
        .find(|d| d.contains("type: kubernetes.io/service-account-token"))
        .expect("a token Secret is rendered");
    let field = |k: &str| {
        doc.lines()
            .find_map(|l| l.trim().strip_prefix(k))
            .unwrap()
            .trim()
            .to_owned()
    };
    assert_eq!((field("namespace:"), field("name:")), {
        let (ns, n) = proton_addons::dashboard_token_secret_ref();
        (ns.to_owned(), n.to_owned())
    });
    format!(
        "/api/v1/namespaces/{}/secrets/{}",
        field("namespace:"),
        field("name:")
    )
}

#[test]
fn dashboard_token_is_read_over_mutual_tls_for_either_dashboard() {
    for (kind, spec_kind, hint) in [
        (
            DashboardKind::Headlamp,
            "headlamp",
            "port-forward svc/proton-headlamp 8080:80",
        ),
        (
            DashboardKind::KubernetesDashboard,
            "kubernetes-dashboard",
            "svc/proton-kubernetes-dashboard-kong-proxy 8443:443",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        init(root, "10.7.7.0/24");
        edit_spec(
            root,
            "kind = \"headlamp\"",
            &format!("kind = \"{spec_kind}\""),
        );
        let pki = kube_api::pki();
        let api = kube_api::serve(&pki);
        let path = token_secret_path(kind);
        let token = format!("eyJ.{spec_kind}.sig");
        let (ns, name) = proton_addons::dashboard_token_secret_ref();
        api.set(&path, 200, &kube_api::secret_json(ns, name, Some(&token)));
        // K3s's admin kubeconfig, where K3s writes it.
        let kc = root.join("etc/rancher/k3s/k3s.yaml");
        std::fs::create_dir_all(kc.parent().unwrap()).unwrap();
        std::fs::write(
            &kc,
            kube_api::kubeconfig(
                &api.url(),
                &pki.ca_pem,
                &pki.client_cert_pem,
                &pki.client_key_pem,
            ),
        )
        .unwrap();

        let o = proton(BIN, root, &["dashboard", "token"]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(
            stdout(&o),
            format!("{token}\n"),
            "the token alone on stdout"
        );
        assert!(stderr(&o).contains(hint), "{spec_kind}: {}", stderr(&o));
        assert!(!stderr(&o).contains(&token), "never on stderr");
        // Not even at the most verbose log level (ureq's TRACE logs the wire unredacted).
        let o = proton(BIN, root, &["-vvv", "dashboard", "token"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let b64 = base64::engine::general_purpose::STANDARD.encode(&token);
        assert!(
            !stderr(&o).contains(&token) && !stderr(&o).contains(&b64),
            "token in the logs"
        );
        let seen = api.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].path, path);
        assert_eq!(
            seen[0].client_cert.as_deref(),
            Some(pki.client_cert_der.as_slice())
        );
    }
}

#[test]
fn dashboard_token_errors_are_one_line_with_the_way_out() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    init(root, "10.7.7.0/24");
    // K3s not installed (no kubeconfig).
    let o = proton(BIN, root, &["dashboard", "token"]);
    let err = assert_fails(&o, 1, "no kubeconfig at");
    assert!(
        err.contains("proton apply") && err.contains("K3s is not installed"),
        "{err}"
    );

    // Installed, the Secret created but not yet filled in; then the API down.
    let pki = kube_api::pki();
    let api = kube_api::serve(&pki);
    let (ns, name) = proton_addons::dashboard_token_secret_ref();
    api.set(
        &format!("/api/v1/namespaces/{ns}/secrets/{name}"),
        200,
        &kube_api::secret_json(ns, name, None),
    );
    let kc = dir.path().join("laptop.yaml");
    std::fs::write(
        &kc,
        kube_api::kubeconfig(
            &api.url(),
            &pki.ca_pem,
            &pki.client_cert_pem,
            &pki.client_key_pem,
        ),
    )
    .unwrap();
    let o = proton(
        BIN,
        root,
        &["dashboard", "token", "--kubeconfig", kc.to_str().unwrap()],
    );
    assert_fails(&o, 1, "has no token yet");

    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("https://{}", l.local_addr().unwrap())
    };
    std::fs::write(
        &kc,
        kube_api::kubeconfig(
            &closed,
            &pki.ca_pem,
            &pki.client_cert_pem,
            &pki.client_key_pem,
        ),
    )
    .unwrap();
    let o = proton(
        BIN,
        root,
        &["dashboard", "token", "--kubeconfig", kc.to_str().unwrap()],
    );
    assert_fails(
        &o,
        1,
        &format!("cannot reach the Kubernetes API at {closed}"),
    );

    edit_spec(
        root,
        "[dashboard]\nenabled = true",
        "[dashboard]\nenabled = false",
    );
    let o = proton(BIN, root, &["dashboard", "token"]);
    assert_fails(&o, 1, "the dashboard is off in the spec");
}

/// `network.cidr` is typed once; the allow-list, the firewall and a client's config all
/// carry it, and none carries the default range.
#[test]
fn allowlist_firewall_and_client_config_take_the_range_from_network_cidr() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    init(root, "10.9.0.0/16");
    let spec = Spec::load(&proton_core::host::Root::new(root)).unwrap();
    let cidr = spec.network.cidr;
    assert_eq!(cidr.to_string(), "10.9.0.0/16");

    let params = AddonsParams::defaults(spec.node_name(), cidr, "ops@example.org");
    let allowlist = render_manifests(&params)
        .unwrap()
        .into_iter()
        .find(|f| f.yaml.contains("kind: Middleware"))
        .unwrap()
        .yaml;
    assert!(
        allowlist.contains("sourceRange:\n    - 10.9.0.0/16\n"),
        "{allowlist}"
    );

    let firewall = proton_k3s::firewall::ruleset(&proton_k3s::FirewallParams::gateway(
        &spec.network.interface,
        cidr,
        spec.listen_port(),
        51821,
        9586,
    ))
    .unwrap();
    assert!(
        firewall.contains("ip saddr 10.9.0.0/16 accept"),
        "{firewall}"
    );

    let o = proton(BIN, root, &["client", "add", "phone"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let client = stdout(&o);
    let allowed: Vec<&str> = client
        .lines()
        .filter(|l| l.starts_with("AllowedIPs"))
        .collect();
    assert_eq!(allowed, ["AllowedIPs = 10.9.0.0/16"], "{client}");
    assert!(client.contains("Address = 10.9.0."), "{client}");

    for (what, text) in [
        ("allow-list", &allowlist),
        ("firewall", &firewall),
        ("client", &client),
    ] {
        assert!(
            !text.contains("10.7.7."),
            "{what} still carries the default range: {text}"
        );
    }
}
