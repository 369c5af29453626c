//! The spec's `[ingress]`, `[tls]` and `[dashboard]` tables → [`AddonsParams`]: the one
//! mapping `proton apply` uses. The allow-list's source range is `network.cidr`, so the
//! VPN network is defined in exactly one place.

use crate::{
    AddonsParams, DashboardKind, DashboardParams, ExtraPort, IngressParams, Protocol, TlsParams,
};
use proton_core::spec::{self, Spec, SpecError};

/// The add-ons the spec asks for. TLS is on only when ingress is too (certificates are
/// answered through Traefik); an add-on that is off is `None`, which renders its file
/// empty so K3s prunes it. Errors when TLS is wanted and `tls.acme_email` is not set.
pub fn from_spec(spec: &Spec) -> Result<AddonsParams, SpecError> {
    let email = spec.require_acme_email()?;
    let i = &spec.ingress;
    let ingress = i.enabled.then(|| IngressParams {
        chart_version: i.chart_version.clone(),
        class: i.class.clone(),
        dashboard_host: i.dashboard_host.clone(),
        extra_ports: i
            .extra_ports
            .iter()
            .map(|p| ExtraPort {
                name: p.name.clone(),
                port: p.port,
                exposed_port: p.exposed_port,
                protocol: match p.protocol {
                    spec::Protocol::Tcp => Protocol::Tcp,
                    spec::Protocol::Udp => Protocol::Udp,
                },
            })
            .collect(),
    });
    let tls = match (spec.tls.enabled && i.enabled, email) {
        (true, Some(email)) => Some(TlsParams {
            acme_email: email.to_string(),
            chart_version: spec.tls.chart_version.clone(),
        }),
        _ => None,
    };
    let d = &spec.dashboard;
    let dashboard = d.enabled.then(|| DashboardParams {
        kind: match d.kind {
            spec::DashboardKind::Headlamp => DashboardKind::Headlamp,
            spec::DashboardKind::KubernetesDashboard => DashboardKind::KubernetesDashboard,
        },
        chart_version: d.chart_version().to_string(),
        host: d.host.clone(),
    });
    Ok(AddonsParams {
        gateway_node_name: spec.node_name().to_string(),
        public_ip: spec.public_ip(),
        vpn_cidr: spec.network.cidr,
        ingress,
        tls,
        dashboard,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FILE_NAMES, object_refs, render_manifests};

    fn spec(extra: &str) -> Spec {
        Spec::from_toml_str(&format!(
            "[gateway]\nname = \"edge\"\nendpoint = \"vps.example.org\"\n{extra}"
        ))
        .unwrap()
    }

    fn kinds(spec: &Spec) -> Vec<(String, Vec<String>)> {
        render_manifests(&from_spec(spec).unwrap())
            .unwrap()
            .iter()
            .map(|f| {
                let refs = object_refs(f).unwrap();
                (
                    f.name.clone(),
                    refs.iter().map(|r| r.kind.clone()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn the_allow_list_comes_from_network_cidr() {
        let s =
            spec("[network]\ncidr = \"10.52.0.0/16\"\n[tls]\nacme_email = \"me@example.org\"\n");
        let p = from_spec(&s).unwrap();
        assert_eq!(p.gateway_node_name, "edge");
        let files = render_manifests(&p).unwrap();
        let routes = files
            .iter()
            .find(|f| f.name == "proton-traefik-routes.yaml")
            .unwrap();
        assert!(routes.yaml.contains("- 10.52.0.0/16"), "{}", routes.yaml);
        assert!(!routes.yaml.contains("10.7.7.0/24"), "{}", routes.yaml);
        let chart = files
            .iter()
            .find(|f| f.name == "proton-traefik.yaml")
            .unwrap();
        assert!(
            chart.yaml.contains("edge"),
            "Traefik pinned to the gateway node"
        );
    }

    #[test]
    fn tls_needs_an_email_unless_off() {
        let err = from_spec(&spec("")).unwrap_err();
        assert!(err.to_string().contains("tls.acme_email"), "{err}");
        let off = from_spec(&spec("[tls]\nenabled = false\n")).unwrap();
        assert!(off.tls.is_none() && off.ingress.is_some());
        // No ingress: no TLS either (HTTP-01 goes through Traefik), and no email needed.
        let no_ingress = from_spec(&spec("[ingress]\nenabled = false\n")).unwrap();
        assert!(no_ingress.tls.is_none() && no_ingress.ingress.is_none());
    }

    #[test]
    fn an_add_on_turned_off_keeps_its_file_with_no_objects() {
        let on = kinds(&spec("[tls]\nacme_email = \"me@example.org\"\n"));
        let off = kinds(&spec(
            "[tls]\nacme_email = \"me@example.org\"\n[dashboard]\nenabled = false\n",
        ));
        let names =
            |k: &[(String, Vec<String>)]| k.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(names(&on), FILE_NAMES.to_vec());
        assert_eq!(names(&off), FILE_NAMES.to_vec());
        let dash = |k: &[(String, Vec<String>)]| {
            k.iter()
                .find(|(n, _)| n == "proton-dashboard.yaml")
                .unwrap()
                .1
                .clone()
        };
        assert!(dash(&on).contains(&"HelmChart".to_string()), "{on:?}");
        assert!(dash(&off).is_empty(), "{off:?}");
    }

    #[test]
    fn dashboard_kind_and_extra_ports_map_through() {
        let s = spec(
            "[tls]\nacme_email = \"me@example.org\"\n[dashboard]\nkind = \"kubernetes-dashboard\"\n\
             [[ingress.extra_ports]]\nname = \"mc\"\nport = 25565\nexposed_port = 25565\nprotocol = \"UDP\"\n",
        );
        let p = from_spec(&s).unwrap();
        let d = p.dashboard.unwrap();
        assert_eq!(d.kind, DashboardKind::KubernetesDashboard);
        assert_eq!(d.chart_version, spec::KUBERNETES_DASHBOARD_CHART_VERSION);
        let port = &p.ingress.unwrap().extra_ports[0];
        assert_eq!((port.name.as_str(), port.protocol), ("mc", Protocol::Udp));
    }
}
