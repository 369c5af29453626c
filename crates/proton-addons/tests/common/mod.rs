//! The parameter sets the golden and schema tests render, and where this crate's test
//! files are (`tests/`: the golden files, and the schemas copied with their
//! SOURCES.txt, so the tests are hermetic). Schema checks: `proton_test_support::schema`.

use proton_addons::{AddonsParams, DashboardKind, DashboardParams, ExtraPort, Protocol};
use std::path::PathBuf;

pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests")
}

pub fn defaults() -> AddonsParams {
    AddonsParams::defaults("gateway", "10.7.7.0/24".parse().unwrap(), "ops@example.org")
}

/// Every option set: dashboards exposed, extra TCP and UDP ports, the archived Kubernetes
/// Dashboard (HTTPS backend, so a ServersTransport too).
pub fn full() -> AddonsParams {
    let mut p = defaults();
    p.public_ip = Some("203.0.113.7".parse().unwrap());
    p.vpn_cidr = "10.8.0.0/16".parse().unwrap();
    let i = p.ingress.as_mut().unwrap();
    i.class = "edge".into();
    i.dashboard_host = Some("traefik.example.org".into());
    i.extra_ports = vec![
        ExtraPort {
            name: "rtmp".into(),
            port: 8935,
            exposed_port: 1935,
            protocol: Protocol::Tcp,
        },
        ExtraPort {
            name: "game-udp".into(),
            port: 27015,
            exposed_port: 27015,
            protocol: Protocol::Udp,
        },
    ];
    p.dashboard = Some(DashboardParams {
        kind: DashboardKind::KubernetesDashboard,
        chart_version: DashboardKind::KubernetesDashboard
            .default_chart_version()
            .into(),
        host: Some("k8s.example.org".into()),
    });
    p
}
