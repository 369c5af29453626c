//! Traefik at the gateway: the HelmChart and its typed values, the VPN allow-list, and the
//! (VPN-only) route to Traefik's own dashboard.

use crate::objects::{
    self, IngressRoute, IngressRouteSpec, IpAllowList, Meta, Middleware, MiddlewareRef,
    MiddlewareSpec, Object, Route, RouteService, RouteTls, TRAEFIK_API,
};
use crate::{AddonsError, IngressParams, Protocol};
use proton_core::net::Cidr;
use serde::Serialize;
use std::collections::BTreeMap;

pub const TRAEFIK_NAMESPACE: &str = "ingress-traefik";
pub const TRAEFIK_RELEASE: &str = "proton-traefik";
pub const TRAEFIK_REPO: &str = "https://traefik.github.io/charts";
pub const ALLOWLIST_NAME: &str = "vpn-allowlist";

/// The K3s ServiceLB pool of the gateway. Traefik itself does not go through ServiceLB
/// (see [`values`]: host ports keep client addresses, ServiceLB's klipper-lb masquerades
/// them). A user's own `LoadBalancer` Service joins this pool with the Service *label*
/// `svccontroller.k3s.cattle.io/lbpool: proton-gateway`: ServiceLB reads
/// `svc.Labels[daemonsetNodePoolLabel]`, not an annotation (k3s-io/k3s
/// `pkg/cloudprovider/servicelb.go`@v1.34.2+k3s1 `newDaemonSet`).
pub const LB_POOL: &str = "proton-gateway";

/// Node labels the K3s server (the gateway) must set (`node-label` in its config.yaml):
/// `enablelb=true` makes ServiceLB run only on labelled nodes (`nodeHasDaemonSetLabel`
/// in servicelb.go), so a `LoadBalancer` Service never opens ports on a worker behind
/// NAT; `lbpool` names the gateway's pool.
pub const GATEWAY_NODE_LABELS: [(&str, &str); 2] = [
    ("svccontroller.k3s.cattle.io/enablelb", "true"),
    ("svccontroller.k3s.cattle.io/lbpool", LB_POOL),
];

/// The host ports Traefik's pod binds on the gateway (chart `ports.<name>.hostPort`).
pub const WEB_HOST_PORT: u16 = 80;
pub const WEBSECURE_HOST_PORT: u16 = 443;

/// Entry-point names the chart defines itself; extra ports must not reuse them.
const RESERVED_PORT_NAMES: [&str; 4] = ["web", "websecure", "traefik", "metrics"];
/// Container ports the chart's built-in entry points listen on.
const RESERVED_CONTAINER_PORTS: [u16; 4] = [8000, 8443, 8080, 9100];

// ---- typed chart values (chart 41.x; the schema has additionalProperties: false) ----------

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TraefikValues {
    pub ingress_class: IngressClassValues,
    pub providers: Providers,
    pub ports: BTreeMap<String, PortValues>,
    pub service: ServiceValues,
    pub update_strategy: UpdateStrategy,
    pub node_selector: BTreeMap<String, String>,
    pub metrics: MetricsValues,
    pub ingress_route: IngressRouteValues,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressClassValues {
    pub enabled: bool,
    pub is_default_class: bool,
    pub name: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Providers {
    pub kubernetes_ingress: KubernetesIngress,
    #[serde(rename = "kubernetesCRD")]
    pub kubernetes_crd: KubernetesCrd,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesIngress {
    pub enabled: bool,
    pub ingress_class: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesCrd {
    pub enabled: bool,
    /// Routes in app namespaces reference the one allow-list in `ingress-traefik`.
    pub allow_cross_namespace: bool,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortValues {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposed_port: Option<u16>,
    /// Bound on the gateway node itself (CNI portmap DNAT, no SNAT): clients keep their
    /// source address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expose: Option<Expose>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<&'static str>,
    #[serde(rename = "allowACMEByPass", skip_serializing_if = "Option::is_none")]
    pub allow_acme_bypass: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<PortHttp>,
}

#[derive(Debug, Serialize)]
pub struct Expose {
    pub default: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct PortHttp {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirections: Option<Redirections>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<PortTls>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Redirections {
    pub entry_point: RedirectEntryPoint,
}

#[derive(Debug, Serialize)]
pub struct RedirectEntryPoint {
    pub to: &'static str,
    pub scheme: &'static str,
    pub permanent: bool,
}

#[derive(Debug, Serialize)]
pub struct PortTls {
    pub enabled: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceValues {
    pub enabled: bool,
    /// `ClusterIP`: in-cluster clients only. Never `LoadBalancer`: ServiceLB would front it
    /// with klipper-lb, whose `entry` script MASQUERADEs every connection (k3s-io/klipper-lb
    /// `entry`@v0.4.9..v0.4.17), so Traefik would see a pod address for every client.
    #[serde(rename = "type")]
    pub type_: &'static str,
}

/// The Deployment's rollout. With host ports on one node a new pod cannot start while the
/// old one holds 80/443, so the old one goes first (the chart's default `maxUnavailable:
/// 0, maxSurge: 1` would leave the rollout pending forever).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateStrategy {
    #[serde(rename = "type")]
    pub type_: &'static str,
    pub rolling_update: RollingUpdate,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RollingUpdate {
    pub max_unavailable: u16,
    pub max_surge: u16,
}

#[derive(Debug, Serialize)]
pub struct MetricsValues {
    pub prometheus: Prometheus,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Prometheus {
    /// The chart's `metrics` entry point (9100), not exposed on the Service.
    pub entry_point: &'static str,
    pub add_entry_points_labels: bool,
    pub add_services_labels: bool,
}

#[derive(Debug, Serialize)]
pub struct IngressRouteValues {
    pub dashboard: Enabled,
}

#[derive(Debug, Serialize)]
pub struct Enabled {
    pub enabled: bool,
}

/// The chart values for Proton's Traefik: one pod on the gateway node (`nodeSelector`)
/// with host ports 80/443 (`ports.web.hostPort`, `ports.websecure.hostPort`; chart
/// traefik/traefik-helm-chart `traefik/templates/_podtemplate.tpl`@v41.3.0 renders them as
/// the container's `hostPort`). K3s's CNI config chains the `portmap` plugin after flannel
/// (k3s-io/k3s `pkg/agent/flannel/setup.go`), which DNATs every local address's port 80/443
/// to the pod and masquerades only hairpin and localhost connections
/// (containernetworking/plugins `plugins/meta/portmap/portmap.go`). So a client on the
/// internet (to the public address) and a VPN client (to the tunnel address) both reach
/// Traefik with their own source address: real client IPs in logs and X-Forwarded-For, and
/// the VPN allow-list works. The README's "Client addresses" section has the whole path.
pub fn values(gateway_node: &str, p: &IngressParams) -> Result<TraefikValues, AddonsError> {
    let mut ports = BTreeMap::new();
    // HTTP -> HTTPS for everything except ACME HTTP-01 challenges. The entry-point redirect
    // is a router with near-maximal priority, so without the bypass it would also redirect
    // cert-manager's solver (traefik/traefik#6766, #7825). `allowACMEByPass` (Traefik
    // >= 3.1.3; since traefik/traefik#12740, in the v3.7 changelog, it also carves
    // `/.well-known/acme-challenge/` out of the redirect rule) lets the solver Ingress
    // answer on port 80. Chart 41.3.0 ships Traefik v3.7.11. A low redirect `priority`
    // would also let the solver through, but would leave every other plain Ingress
    // reachable over HTTP, which is what the redirect is for.
    ports.insert(
        "web".to_owned(),
        PortValues {
            host_port: Some(WEB_HOST_PORT),
            allow_acme_bypass: Some(true),
            http: Some(PortHttp {
                redirections: Some(Redirections {
                    entry_point: RedirectEntryPoint {
                        to: "websecure",
                        scheme: "https",
                        permanent: true,
                    },
                }),
                tls: None,
            }),
            ..PortValues::default()
        },
    );
    ports.insert(
        "websecure".to_owned(),
        PortValues {
            host_port: Some(WEBSECURE_HOST_PORT),
            http: Some(PortHttp {
                redirections: None,
                tls: Some(PortTls { enabled: true }),
            }),
            ..PortValues::default()
        },
    );
    for extra in &p.extra_ports {
        check_extra_port(extra, &ports)?;
        ports.insert(
            extra.name.clone(),
            PortValues {
                port: Some(extra.port),
                exposed_port: Some(extra.exposed_port),
                host_port: Some(extra.exposed_port),
                expose: Some(Expose { default: true }),
                protocol: Some(match extra.protocol {
                    Protocol::Tcp => "TCP",
                    Protocol::Udp => "UDP",
                }),
                ..PortValues::default()
            },
        );
    }
    Ok(TraefikValues {
        ingress_class: IngressClassValues {
            enabled: true,
            is_default_class: false,
            name: p.class.clone(),
        },
        providers: Providers {
            kubernetes_ingress: KubernetesIngress {
                enabled: true,
                ingress_class: p.class.clone(),
            },
            kubernetes_crd: KubernetesCrd {
                enabled: true,
                allow_cross_namespace: true,
            },
        },
        ports,
        service: ServiceValues {
            enabled: true,
            type_: "ClusterIP",
        },
        update_strategy: UpdateStrategy {
            type_: "RollingUpdate",
            rolling_update: RollingUpdate {
                max_unavailable: 1,
                max_surge: 0,
            },
        },
        node_selector: BTreeMap::from([(
            "kubernetes.io/hostname".to_owned(),
            gateway_node.to_owned(),
        )]),
        metrics: MetricsValues {
            prometheus: Prometheus {
                entry_point: "metrics",
                add_entry_points_labels: true,
                add_services_labels: true,
            },
        },
        // The chart's own dashboard route is off; Proton writes a VPN-only one (or none).
        ingress_route: IngressRouteValues {
            dashboard: Enabled { enabled: false },
        },
    })
}

fn check_extra_port(
    extra: &crate::ExtraPort,
    taken: &BTreeMap<String, PortValues>,
) -> Result<(), AddonsError> {
    let bad = |reason: String| AddonsError::ExtraPort {
        name: extra.name.clone(),
        reason,
    };
    let n = &extra.name;
    // A container port name: IANA_SVC_NAME (<= 15 chars, lowercase alphanumerics and '-',
    // at least one letter, no leading/trailing/double '-').
    let valid = !n.is_empty()
        && n.len() <= 15
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && n.bytes().any(|b| b.is_ascii_lowercase())
        && !n.starts_with('-')
        && !n.ends_with('-')
        && !n.contains("--");
    if !valid {
        return Err(bad(
            "use 1-15 lowercase letters, digits and single '-' (e.g. rtmp)".into(),
        ));
    }
    if RESERVED_PORT_NAMES.contains(&n.as_str()) || taken.contains_key(n) {
        return Err(bad(
            "the name is already an entry point; pick another".into()
        ));
    }
    if extra.port <= 1024 || RESERVED_CONTAINER_PORTS.contains(&extra.port) {
        return Err(bad(format!(
            "port {} is privileged or used by Traefik itself; use another port above 1024 \
             inside the pod (exposed_port is what clients see)",
            extra.port
        )));
    }
    if extra.exposed_port == 0 || [80, 443].contains(&extra.exposed_port) {
        return Err(bad(format!(
            "exposed_port {} is 0 or taken by web/websecure",
            extra.exposed_port
        )));
    }
    let clash = taken
        .iter()
        .find(|(_, v)| v.port == Some(extra.port) || v.exposed_port == Some(extra.exposed_port));
    if let Some((other, _)) = clash {
        return Err(bad(format!(
            "its port or exposed_port is already used by `{other}`"
        )));
    }
    Ok(())
}

pub fn helm_chart(gateway_node: &str, p: &IngressParams) -> Result<Object, AddonsError> {
    let values = values(gateway_node, p)?;
    let yaml = serde_norway::to_string(&values).map_err(AddonsError::Yaml)?;
    Ok(objects::helm_chart(
        TRAEFIK_RELEASE,
        "traefik",
        TRAEFIK_REPO,
        &p.chart_version,
        TRAEFIK_NAMESPACE,
        Some(yaml),
    ))
}

/// The allow-list: `sourceRange` is the tunnel network's own text, nothing typed twice.
pub fn allowlist(vpn: &Cidr) -> Object {
    Object::Middleware(Middleware {
        api_version: TRAEFIK_API,
        kind: "Middleware",
        metadata: Meta::namespaced(TRAEFIK_NAMESPACE, ALLOWLIST_NAME),
        spec: MiddlewareSpec {
            ip_allow_list: IpAllowList {
                source_range: vec![vpn.to_string()],
            },
        },
    })
}

pub(crate) fn allowlist_ref() -> MiddlewareRef {
    MiddlewareRef {
        name: ALLOWLIST_NAME.to_owned(),
        namespace: TRAEFIK_NAMESPACE.to_owned(),
    }
}

/// A websecure IngressRoute for `host` (TLS from `secret`).
pub(crate) fn route(
    namespace: &str,
    name: &str,
    host: &str,
    service: RouteService,
    vpn_only: bool,
    secret: &str,
) -> Object {
    Object::IngressRoute(IngressRoute {
        api_version: TRAEFIK_API,
        kind: "IngressRoute",
        metadata: Meta::namespaced(namespace, name),
        spec: IngressRouteSpec {
            entry_points: vec!["websecure".to_owned()],
            routes: vec![Route {
                kind: "Rule",
                match_: format!("Host(`{host}`)"),
                middlewares: if vpn_only {
                    vec![allowlist_ref()]
                } else {
                    vec![]
                },
                services: vec![service],
            }],
            tls: RouteTls {
                secret_name: secret.to_owned(),
            },
        },
    })
}

/// Traefik's dashboard (`api@internal`) at `host`, behind the allow-list, with its
/// certificate.
pub fn dashboard_route(host: &str) -> Vec<Object> {
    let secret = "cert-traefik-dashboard";
    vec![
        route(
            TRAEFIK_NAMESPACE,
            "traefik-dashboard",
            host,
            RouteService {
                kind: Some("TraefikService"),
                name: "api@internal".to_owned(),
                namespace: None,
                port: None,
                scheme: None,
                servers_transport: None,
            },
            true,
            secret,
        ),
        objects::certificate(TRAEFIK_NAMESPACE, "traefik-dashboard", host, secret),
    ]
}
