use super::*;

fn minimal() -> &'static str {
    "[gateway]\nendpoint = \"vps.example.com\"\n"
}

#[test]
fn defaults_follow_the_walkthrough() {
    let s = Spec::from_toml_str(minimal()).unwrap();
    assert_eq!(s.gateway.name, "proton");
    assert_eq!(s.gateway.endpoint.to_string(), "vps.example.com:51820");
    assert_eq!(s.network.cidr.to_string(), "10.7.7.0/24");
    assert_eq!(s.gateway_address(), Ipv4Addr::new(10, 7, 7, 1));
    assert_eq!(s.network.interface, "wg0");
    assert_eq!(s.network.fwmark, 0x4000);
    assert_eq!(s.network.persistent_keepalive, 25);
    assert_eq!(s.network.backend, Backend::Auto);
    assert_eq!(s.listen_port(), 51820);
    assert_eq!(s.ingress.class, "traefik-cert-manager");
    assert_eq!(s.node_name(), "proton");
    assert_eq!(s.public_ip(), None);
}

#[test]
fn to_toml_round_trips_and_is_commented() {
    let mut s = Spec::new("[2001:db8::1]:51000".parse().unwrap());
    s.network.dns = vec!["10.7.7.1".parse().unwrap()];
    s.tls.acme_email = Some("ops@example.com".into());
    s.ingress.extra_ports.push(ExtraPort {
        name: "rtmp".into(),
        port: 8935,
        exposed_port: 1935,
        protocol: Protocol::Tcp,
    });
    let text = s.to_toml();
    assert!(text.contains("# The VPN"), "{text}");
    assert!(text.contains("fwmark = \"0x4000\""), "{text}");
    assert_eq!(Spec::from_toml_str(&text).unwrap(), s);
    assert_eq!(s.public_ip(), Some("2001:db8::1".parse().unwrap()));
}

#[test]
fn endpoints_parse_names_v4_v6_and_ports() {
    let e: Endpoint = "1.2.3.4".parse().unwrap();
    assert_eq!((e.host_string(), e.port), ("1.2.3.4".to_string(), 51820));
    let e: Endpoint = "[2001:db8::1]:9".parse().unwrap();
    assert_eq!(e.to_string(), "[2001:db8::1]:9");
    let e: Endpoint = "VPS.Example.com:443".parse().unwrap();
    assert_eq!(e.to_string(), "vps.example.com:443");
    for bad in [
        "",
        "host:0",
        "host:65536",
        "host:abc",
        "bad host",
        "[::1",
        "-a.com",
    ] {
        assert!(bad.parse::<Endpoint>().is_err(), "{bad} should be refused");
    }
}

fn err(text: &str) -> String {
    Spec::from_toml_str(text).unwrap_err().to_string()
}

#[test]
fn errors_name_the_field_and_the_fix() {
    let e = err("[gateway]\nendpoint = \"h\"\n[network]\ncidr = \"10.7.7.0/31\"\n");
    assert!(e.contains("/31 is too small"), "{e}");
    let e = err("[gateway]\nendpoint = \"h\"\n[network]\ncidr = \"10.7.7.3/24\"\n");
    assert!(e.contains("10.7.7.0/24"), "{e}");
    for (cidr, why) in [
        ("0.0.0.0/0", "is too large"),
        ("10.0.0.0/8", "is too large"),
        ("198.51.100.0/24", "is not a private range"),
        ("10.43.0.0/20", "overlaps K3s's service range"),
    ] {
        let e = err(&format!(
            "[gateway]\nendpoint = \"h\"\n[network]\ncidr = \"{cidr}\"\n"
        ));
        assert!(e.starts_with("network.cidr: ") && e.contains(why), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
    let e = err("[gateway]\nendpoint = \"h:70000\"\n");
    assert!(e.contains("70000") && e.contains("1-65535"), "{e}");
    let e = err("[gateway]\nendpoint = \"h\"\n[network]\ninterfce = \"wg0\"\n");
    assert!(e.contains("interfce") && e.contains("line 4"), "{e}");
    let e =
        err("[gateway]\nendpoint = \"h\"\n[network]\ninterface = \"this-name-is-far-too-long\"\n");
    assert!(e.starts_with("network.interface:"), "{e}");
    let e = err("[gateway]\nendpoint = \"h\"\nname = \"Proton_1\"\n");
    assert!(e.starts_with("gateway.name:"), "{e}");
    let e = err("[gateway]\nendpoint = \"h\"\n[network]\nmtu = 100\n");
    assert!(e.starts_with("network.mtu:"), "{e}");
    let e = err("[gateway]\nendpoint = \"h\"\n[k3s]\nversion = \"1.30\"\n");
    assert!(e.starts_with("k3s.version:"), "{e}");
    let e = err("[gateway]\nendpoint = \"h\"\n[network]\nfwmark = \"0xzz\"\n");
    assert!(e.contains("firewall mark"), "{e}");
    let e = err("[gateway]\n");
    assert!(e.contains("endpoint"), "{e}");
    let e = err(
        "[gateway]\nendpoint = \"h\"\n[[ingress.extra_ports]]\nname = \"web\"\nport = 1\nexposed_port = 2\n",
    );
    assert!(e.contains("built-in"), "{e}");
    assert!(!e.contains('\n'), "one line: {e}");
}

#[test]
fn acme_email_is_required_only_for_apply() {
    let s = Spec::from_toml_str(minimal()).unwrap();
    let e = s.require_acme_email().unwrap_err().to_string();
    assert!(e.starts_with("tls.acme_email:"), "{e}");
}

#[test]
fn load_names_the_file_and_the_next_step() {
    let dir = tempfile::tempdir().unwrap();
    let root = Root::new(dir.path());
    let e = Spec::load(&root).unwrap_err().to_string();
    assert!(e.contains("proton init"), "{e}");
    root.write(
        SPEC_PATH,
        b"[gateway]\nendpoint = \"h\"\nbogus = 1\n",
        0o644,
    )
    .unwrap();
    let e = Spec::load(&root).unwrap_err().to_string();
    assert!(e.contains("proton.toml") && e.contains("bogus"), "{e}");
}

#[test]
fn fwmark_accepts_hex_decimal_and_off() {
    assert_eq!(parse_fwmark("0x4000"), Ok(0x4000));
    assert_eq!(parse_fwmark("16384"), Ok(0x4000));
    assert_eq!(parse_fwmark("off"), Ok(0));
    let s =
        Spec::from_toml_str("[gateway]\nendpoint = \"h\"\n[network]\nfwmark = 16384\n").unwrap();
    assert_eq!(s.network.fwmark, 0x4000);
}

#[test]
fn serde_errors_name_the_key_path_and_line() {
    let e = err("[gateway]\nendpoint = \"h\"\n[network]\ncidr = \"10.7.7.0/31\"\n");
    assert!(e.contains("line 4: network.cidr:"), "{e}");
    let e = err("[gateway]\nendpoint = \"h\"\n[network]\ninterfce = \"wg0\"\n");
    assert!(e.contains("network.interfce"), "{e}");
    let e = err("[gateway]\nname = \"x\"\n");
    assert!(e.contains("gateway") && e.contains("endpoint"), "{e}");
    assert!(!e.contains('\n'), "one line: {e}");
    let e = err("[gateway]\nendpoint = \"h\"\n[network]\nbackend = \"fast\"\n");
    assert!(e.contains("network.backend"), "{e}");
    let e = err(
        "[gateway]\nendpoint = \"h\"\n[[ingress.extra_ports]]\nname = \"rtmp\"\nport = 0x1ffff\nexposed_port = 2\n",
    );
    assert!(e.contains("ingress.extra_ports.port"), "{e}");
}

#[test]
fn more_fields_are_checked() {
    let e = err("[gateway]\nendpoint = \"h\"\n[k3s]\ninstall_script = \"get.k3s.io\"\n");
    assert!(e.starts_with("k3s.install_script:"), "{e}");
    let ok = "[gateway]\nendpoint = \"h\"\n[k3s]\ninstall_script = \"/opt/k3s/install.sh\"\n";
    assert!(Spec::from_toml_str(ok).is_ok());
    let e = err("[gateway]\nendpoint = \"h\"\n[ingress]\ndashboard_host = \"bad host\"\n");
    assert!(e.starts_with("ingress.dashboard_host:"), "{e}");
    let e = err("[gateway]\nendpoint = \"h\"\n[tls]\ndefault_issuer = \"zerossl\"\n");
    assert!(e.starts_with("tls.default_issuer:"), "{e}");
    let e = err(
        "[gateway]\nendpoint = \"h\"\n[[ingress.extra_ports]]\nname = \"a\"\nport = 1\nexposed_port = 2\n[[ingress.extra_ports]]\nname = \"a\"\nport = 3\nexposed_port = 4\n",
    );
    assert!(e.contains("appears twice"), "{e}");
    let e = err("[gateway]\nendpoint = \"h\"\n[network]\ninterface = \"wg:0\"\n");
    assert!(e.starts_with("network.interface:"), "{e}");
}

#[test]
fn dashboard_defaults_to_headlamp_with_a_pinned_chart() {
    let s = Spec::from_toml_str(minimal()).unwrap();
    assert!(s.dashboard.enabled);
    assert_eq!(s.dashboard.kind, DashboardKind::Headlamp);
    assert_eq!(s.dashboard.chart_version(), HEADLAMP_CHART_VERSION);
    let s = Spec::from_toml_str(
        "[gateway]\nendpoint = \"h\"\n[dashboard]\nkind = \"kubernetes-dashboard\"\n",
    )
    .unwrap();
    assert!(
        s.dashboard.enabled,
        "a [dashboard] section keeps enabled = true"
    );
    assert_eq!(
        s.dashboard.chart_version(),
        KUBERNETES_DASHBOARD_CHART_VERSION
    );
    assert_eq!(
        Spec::new("vps.example.com".parse().unwrap()),
        Spec::from_toml_str(minimal()).unwrap()
    );
}

#[test]
fn acme_email_is_not_needed_without_tls_or_ingress() {
    let mut s = Spec::from_toml_str(minimal()).unwrap();
    s.tls.enabled = false;
    assert_eq!(s.require_acme_email(), Ok(None));
    s.tls.enabled = true;
    s.ingress.enabled = false;
    assert_eq!(s.require_acme_email(), Ok(None));
    s.ingress.enabled = true;
    s.tls.acme_email = Some("ops@example.com".into());
    assert_eq!(s.require_acme_email(), Ok(Some("ops@example.com")));
}

#[test]
fn dns_zone_defaults_under_internal_and_a_bad_zone_is_refused() {
    let s = Spec::from_toml_str("[gateway]\nendpoint = \"203.0.113.5\"\n").unwrap();
    assert!(s.dns.enabled);
    assert_eq!(s.dns.zone, "proton.internal");
    let s = Spec::from_toml_str(
        "[gateway]\nendpoint = \"203.0.113.5\"\n[dns]\nzone = \"home.internal\"\n",
    )
    .unwrap();
    assert_eq!(s.dns.zone, "home.internal");
    for bad in ["", "a..b", "x_y.internal", "home.internal."] {
        let err = Spec::from_toml_str(&format!(
            "[gateway]\nendpoint = \"203.0.113.5\"\n[dns]\nzone = \"{bad}\"\n"
        ))
        .unwrap_err();
        assert!(err.to_string().starts_with("dns.zone: "), "{err}");
    }
}
