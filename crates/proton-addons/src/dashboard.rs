//! The cluster dashboard (Headlamp by default, the archived Kubernetes Dashboard on
//! request), Proton's admin ServiceAccount and its long-lived login token.

use crate::objects::{
    self, Meta, Object, RouteService, ServersTransport, ServersTransportSpec, TRAEFIK_API,
    core_meta,
};
use crate::{DashboardKind, DashboardParams, traefik};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use std::collections::BTreeMap;

/// Where the admin ServiceAccount and its token live: kube-system always exists, so these
/// objects never wait for a chart to create a namespace.
pub const ADMIN_NAMESPACE: &str = "kube-system";
pub const ADMIN_ACCOUNT: &str = "proton-admin";
pub const ADMIN_TOKEN_SECRET: &str = "proton-admin-token";

pub const HEADLAMP_REPO: &str = "https://kubernetes-sigs.github.io/headlamp/";
/// Pinned default. At 0.39.0 the chart binds its own ServiceAccount to cluster-admin
/// unless told not to (kubernetes-sigs/headlamp `charts/headlamp/values.yaml`@headlamp-helm-0.39.0:
/// `clusterRoleBinding.create: true`, `clusterRoleName: cluster-admin`;
/// `templates/clusterrolebinding.yaml`), so [`helm_chart`] sets [`HEADLAMP_VALUES`]:
/// Headlamp calls the API with the token the user signs in with (Proton's admin token),
/// and its own account gets no rights at all.
pub const HEADLAMP_DEFAULT_VERSION: &str = proton_core::spec::HEADLAMP_CHART_VERSION;
pub const KUBERNETES_DASHBOARD_REPO: &str = "https://kubernetes.github.io/dashboard/";
/// Pinned default: the last release of the archived project's chart.
pub const KUBERNETES_DASHBOARD_DEFAULT_VERSION: &str =
    proton_core::spec::KUBERNETES_DASHBOARD_CHART_VERSION;

/// Everything a dashboard kind decides: chart, namespace, and the Service to route to.
struct Flavour {
    chart: &'static str,
    release: &'static str,
    repo: &'static str,
    namespace: &'static str,
    service: &'static str,
    port: u16,
    /// The backend speaks HTTPS with a self-signed certificate.
    https: bool,
}

fn flavour(kind: DashboardKind) -> Flavour {
    match kind {
        // Service name = release name (it contains the chart name); HTTP on port 80.
        DashboardKind::Headlamp => Flavour {
            chart: "headlamp",
            release: "proton-headlamp",
            repo: HEADLAMP_REPO,
            namespace: "headlamp",
            service: "proton-headlamp",
            port: 80,
            https: false,
        },
        // Chart 7.x fronts the UI and API with Kong: `<release>-kong-proxy`, HTTPS on 443.
        DashboardKind::KubernetesDashboard => Flavour {
            chart: "kubernetes-dashboard",
            release: "proton-kubernetes-dashboard",
            repo: KUBERNETES_DASHBOARD_REPO,
            namespace: "kubernetes-dashboard",
            service: "proton-kubernetes-dashboard-kong-proxy",
            port: 443,
            https: true,
        },
    }
}

/// Headlamp's chart values: no ClusterRoleBinding for the chart's own ServiceAccount
/// (at 0.39.0 the chart would bind it to cluster-admin; see [`HEADLAMP_DEFAULT_VERSION`]).
pub const HEADLAMP_VALUES: &str = "clusterRoleBinding:\n  create: false\n";

/// The chart. Headlamp gets [`HEADLAMP_VALUES`]; the Kubernetes Dashboard's defaults are
/// what Proton wants (its chart binds no account to cluster-admin).
pub fn helm_chart(p: &DashboardParams) -> Object {
    let f = flavour(p.kind);
    let values = match p.kind {
        DashboardKind::Headlamp => Some(HEADLAMP_VALUES.to_owned()),
        DashboardKind::KubernetesDashboard => None,
    };
    objects::helm_chart(
        f.release,
        f.chart,
        f.repo,
        &p.chart_version,
        f.namespace,
        values,
    )
}

/// ServiceAccount, its cluster-admin binding and a long-lived token Secret. The Secret has
/// no data here: Kubernetes' token controller fills it in.
pub fn admin_account() -> Vec<Object> {
    let sa = ServiceAccount {
        metadata: core_meta(Some(ADMIN_NAMESPACE), ADMIN_ACCOUNT),
        ..ServiceAccount::default()
    };
    let binding = ClusterRoleBinding {
        metadata: core_meta(None, ADMIN_ACCOUNT),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "ClusterRole".to_owned(),
            name: "cluster-admin".to_owned(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name: ADMIN_ACCOUNT.to_owned(),
            namespace: Some(ADMIN_NAMESPACE.to_owned()),
            api_group: None,
        }]),
    };
    let mut meta = core_meta(Some(ADMIN_NAMESPACE), ADMIN_TOKEN_SECRET);
    meta.annotations = Some(BTreeMap::from([(
        "kubernetes.io/service-account.name".to_owned(),
        ADMIN_ACCOUNT.to_owned(),
    )]));
    let token = Secret {
        metadata: meta,
        type_: Some("kubernetes.io/service-account-token".to_owned()),
        ..Secret::default()
    };
    vec![
        Object::ServiceAccount(sa),
        Object::ClusterRoleBinding(binding),
        Object::Secret(token),
    ]
}

/// VPN-only exposure at `host`: IngressRoute + Certificate (+ ServersTransport when the
/// backend is HTTPS).
pub fn exposure(p: &DashboardParams, host: &str) -> Vec<Object> {
    let f = flavour(p.kind);
    let name = f.chart;
    let secret = format!("cert-{name}");
    let mut out = Vec::new();
    let transport = f.https.then(|| {
        out.push(Object::ServersTransport(ServersTransport {
            api_version: TRAEFIK_API,
            kind: "ServersTransport",
            metadata: Meta::namespaced(f.namespace, name),
            spec: ServersTransportSpec {
                server_name: host.to_owned(),
                insecure_skip_verify: true,
            },
        }));
        name.to_owned()
    });
    let service = RouteService {
        kind: None,
        name: f.service.to_owned(),
        namespace: None,
        port: Some(f.port),
        scheme: f.https.then_some("https"),
        servers_transport: transport,
    };
    out.push(traefik::route(
        f.namespace,
        name,
        host,
        service,
        true,
        &secret,
    ));
    out.push(objects::certificate(f.namespace, name, host, &secret));
    out
}

/// Where `proton dashboard token` reads the login token: `(namespace, secret name)`; the
/// token is the Secret's `data.token`.
pub fn dashboard_token_secret_ref() -> (&'static str, &'static str) {
    (ADMIN_NAMESPACE, ADMIN_TOKEN_SECRET)
}

/// How to open the dashboard of `kind` with the token: its VPN-only URL when exposed at
/// `host`, else the `kubectl port-forward` to its Service (from a machine with the
/// kubeconfig from `proton kubeconfig`).
pub fn open_instructions(kind: DashboardKind, host: Option<&str>) -> String {
    let f = flavour(kind);
    let what = match kind {
        DashboardKind::Headlamp => "Headlamp",
        DashboardKind::KubernetesDashboard => "the Kubernetes Dashboard",
    };
    match host {
        Some(h) => {
            format!("Open https://{h} (over the VPN) and sign in to {what} with this token.")
        }
        None => {
            let (local, scheme) = if f.https {
                (8443, "https")
            } else {
                (8080, "http")
            };
            format!(
                "Open {what}: kubectl -n {} port-forward svc/{} {local}:{}, then {scheme}://localhost:{local}, and sign in with this token.",
                f.namespace, f.service, f.port
            )
        }
    }
}
