//! Typed Kubernetes objects: `k8s-openapi` for core kinds, plain serde structs for the
//! custom resources Proton writes (only the fields it sets; each validated in tests against
//! the CRD's served `openAPIV3Schema`).

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use std::collections::BTreeMap;

/// Metadata of a custom resource: the subset Proton sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Meta {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Meta {
    pub fn namespaced(namespace: &str, name: &str) -> Self {
        Meta {
            name: name.to_owned(),
            namespace: Some(namespace.to_owned()),
            labels: managed_labels(),
        }
    }
    pub fn cluster(name: &str) -> Self {
        Meta {
            name: name.to_owned(),
            namespace: None,
            labels: managed_labels(),
        }
    }
}

/// Every object Proton writes carries this label, so `kubectl get -l` finds them all.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "proton");

pub(crate) fn managed_labels() -> BTreeMap<String, String> {
    BTreeMap::from([(MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned())])
}

pub(crate) fn core_meta(namespace: Option<&str>, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: Some(managed_labels()),
        ..ObjectMeta::default()
    }
}

// ---- helm.cattle.io/v1 HelmChart -------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HelmChart {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: Meta,
    pub spec: HelmChartSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HelmChartSpec {
    pub chart: String,
    pub repo: String,
    pub version: String,
    pub target_namespace: String,
    pub create_namespace: bool,
    /// The chart values as a YAML document (a typed values struct, serialized).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values_content: Option<String>,
}

// ---- traefik.io/v1alpha1 ----------------------------------------------------------------

pub const TRAEFIK_API: &str = "traefik.io/v1alpha1";

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Middleware {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: Meta,
    pub spec: MiddlewareSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MiddlewareSpec {
    pub ip_allow_list: IpAllowList,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IpAllowList {
    pub source_range: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressRoute {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: Meta,
    pub spec: IngressRouteSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressRouteSpec {
    pub entry_points: Vec<String>,
    pub routes: Vec<Route>,
    pub tls: RouteTls,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    pub kind: &'static str,
    #[serde(rename = "match")]
    pub match_: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub middlewares: Vec<MiddlewareRef>,
    pub services: Vec<RouteService>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MiddlewareRef {
    pub name: String,
    pub namespace: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteService {
    /// `Service` (default) or `TraefikService` (e.g. `api@internal`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub servers_transport: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteTls {
    pub secret_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServersTransport {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: Meta,
    pub spec: ServersTransportSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServersTransportSpec {
    pub server_name: String,
    /// The backend serves a self-signed certificate inside the cluster; the hop from
    /// Traefik to it never leaves the node network.
    pub insecure_skip_verify: bool,
}

// ---- cert-manager.io/v1 -----------------------------------------------------------------

pub const CERT_MANAGER_API: &str = "cert-manager.io/v1";

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterIssuer {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: Meta,
    pub spec: ClusterIssuerSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterIssuerSpec {
    pub acme: Acme,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Acme {
    pub email: String,
    pub server: String,
    pub preferred_chain: String,
    pub private_key_secret_ref: SecretRef,
    pub solvers: Vec<Solver>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecretRef {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Solver {
    pub http01: Http01,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Http01 {
    pub ingress: Http01Ingress,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Http01Ingress {
    pub ingress_class_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Certificate {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: Meta,
    pub spec: CertificateSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateSpec {
    pub dns_names: Vec<String>,
    pub issuer_ref: IssuerRef,
    pub secret_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IssuerRef {
    pub group: &'static str,
    pub kind: &'static str,
    pub name: String,
}

// ---- the union ----------------------------------------------------------------------------

/// One Kubernetes object Proton renders. Serializes to the object itself (untagged).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Object {
    ServiceAccount(ServiceAccount),
    ClusterRoleBinding(ClusterRoleBinding),
    /// Only the service-account token Secret: it holds no data of Proton's (Kubernetes'
    /// token controller fills it in), so nothing secret is ever in a rendered manifest.
    Secret(Secret),
    HelmChart(HelmChart),
    Middleware(Middleware),
    IngressRoute(IngressRoute),
    ServersTransport(ServersTransport),
    ClusterIssuer(ClusterIssuer),
    Certificate(Certificate),
    /// upgrade.cattle.io/v1 Plan (the system-upgrade-controller's; see `upgrade`).
    Plan(crate::upgrade::Plan),
}

/// Enough to find (and delete) an object through the Kubernetes API.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

impl Object {
    /// The object's identity (apiVersion, kind, namespace, name).
    pub fn reference(&self) -> ObjectRef {
        use k8s_openapi::Resource;
        fn core<K: Resource>(m: &ObjectMeta) -> ObjectRef {
            ObjectRef {
                api_version: K::API_VERSION.to_owned(),
                kind: K::KIND.to_owned(),
                namespace: m.namespace.clone(),
                name: m.name.clone().unwrap_or_default(),
            }
        }
        fn custom(api: &str, kind: &str, m: &Meta) -> ObjectRef {
            ObjectRef {
                api_version: api.to_owned(),
                kind: kind.to_owned(),
                namespace: m.namespace.clone(),
                name: m.name.clone(),
            }
        }
        match self {
            Object::ServiceAccount(o) => core::<ServiceAccount>(&o.metadata),
            Object::ClusterRoleBinding(o) => core::<ClusterRoleBinding>(&o.metadata),
            Object::Secret(o) => core::<Secret>(&o.metadata),
            Object::HelmChart(o) => custom(o.api_version, o.kind, &o.metadata),
            Object::Middleware(o) => custom(o.api_version, o.kind, &o.metadata),
            Object::IngressRoute(o) => custom(o.api_version, o.kind, &o.metadata),
            Object::ServersTransport(o) => custom(o.api_version, o.kind, &o.metadata),
            Object::ClusterIssuer(o) => custom(o.api_version, o.kind, &o.metadata),
            Object::Certificate(o) => custom(o.api_version, o.kind, &o.metadata),
            Object::Plan(o) => custom(o.api_version, o.kind, &o.metadata),
        }
    }
}

pub(crate) fn helm_chart(
    release: &str,
    chart: &str,
    repo: &str,
    version: &str,
    target_namespace: &str,
    values_content: Option<String>,
) -> Object {
    Object::HelmChart(HelmChart {
        api_version: "helm.cattle.io/v1",
        kind: "HelmChart",
        // HelmChart objects live in kube-system, where K3s's helm-controller watches them
        // and runs its install jobs.
        // Its name is the Helm release name; `proton-` keeps it apart from K3s's own
        // packaged HelmCharts (`traefik`, `traefik-crd`), which K3s deletes when disabled.
        metadata: Meta::namespaced("kube-system", release),
        spec: HelmChartSpec {
            chart: chart.to_owned(),
            repo: repo.to_owned(),
            version: version.to_owned(),
            target_namespace: target_namespace.to_owned(),
            create_namespace: true,
            values_content,
        },
    })
}

pub(crate) fn certificate(namespace: &str, name: &str, host: &str, secret: &str) -> Object {
    certificate_from(
        namespace,
        name,
        host,
        secret,
        crate::certmanager::PROD_ISSUER,
    )
}

/// A Certificate from the ClusterIssuer named `issuer`.
pub(crate) fn certificate_from(
    namespace: &str,
    name: &str,
    host: &str,
    secret: &str,
    issuer: &str,
) -> Object {
    Object::Certificate(Certificate {
        api_version: CERT_MANAGER_API,
        kind: "Certificate",
        metadata: Meta::namespaced(namespace, name),
        spec: CertificateSpec {
            dns_names: vec![host.to_owned()],
            issuer_ref: IssuerRef {
                group: "cert-manager.io",
                kind: "ClusterIssuer",
                name: issuer.to_owned(),
            },
            secret_name: secret.to_owned(),
        },
    })
}
