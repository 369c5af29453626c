//! Kubernetes add-ons for the gateway, as files for K3s's auto-deploy directory
//! (`/var/lib/rancher/k3s/server/manifests/`): Traefik pinned to the gateway, the VPN
//! allow-list, cert-manager with Let's Encrypt issuers, and a cluster dashboard with an
//! admin token. Every object is a Rust type rendered by serde; no Helm or kubectl needed.
//!
//! ```
//! use proton_addons::{AddonsParams, render_manifests};
//! let params = AddonsParams::defaults("gw", "10.7.7.0/24".parse().unwrap(), "me@example.org");
//! let files = render_manifests(&params).unwrap();
//! assert!(files.iter().all(|f| f.name.starts_with("proton-")));
//! let routes = files.iter().find(|f| f.name == "proton-traefik-routes.yaml").unwrap();
//! assert!(routes.yaml.contains("- 10.7.7.0/24"));
//! ```
//!
//! **Removal.** K3s ignores a deleted auto-deploy file (its objects stay), but prunes the
//! objects that disappear from a file that still exists, and pruning a HelmChart uninstalls
//! its chart. So [`render_manifests`] always writes the same set of files ([`FILE_NAMES`]);
//! an add-on that is off leaves its file with no objects. [`plan_removal`] lists what
//! that will remove (for `apply --dry-run`, or to delete through the API as well).
#![deny(unsafe_code)]

mod certmanager;
mod dashboard;
mod expose;
mod files;
pub mod objects;
mod spec;
mod traefik;
mod upgrade;

pub use certmanager::{PROD_ISSUER, STAGING_ISSUER};
pub use dashboard::{
    HEADLAMP_DEFAULT_VERSION, KUBERNETES_DASHBOARD_DEFAULT_VERSION, dashboard_token_secret_ref,
    open_instructions,
};
pub use expose::{
    MANIFESTS_DIR, ServiceTarget, expose, expose_file_name, expose_manifest, unexpose_manifest,
    vpn_only_hosts,
};
pub use files::{
    FILE_NAMES, ManifestFile, PACKAGED_COMPONENT_FILES, object_refs, plan_removal, to_yaml,
};
pub use objects::{Object, ObjectRef};
pub use spec::from_spec;
pub use traefik::{ALLOWLIST_NAME, GATEWAY_NODE_LABELS, LB_POOL, TRAEFIK_NAMESPACE, TraefikValues};
pub use upgrade::{
    AGENT_PLAN, CONTROL_PLANE_LABEL, K3S_UPGRADE_IMAGE, SERVER_PLAN,
    SYSTEM_UPGRADE_CONTROLLER_VERSION, SYSTEM_UPGRADE_NAMESPACE, UPGRADE_FILE_NAMES, UpgradeParams,
    render_upgrade_manifests,
};

use proton_core::net::Cidr;
use std::net::IpAddr;

/// Pinned default chart versions (the spec may override them); pinned once, in the spec.
pub const TRAEFIK_DEFAULT_VERSION: &str = proton_core::spec::TRAEFIK_CHART_VERSION;
pub const CERT_MANAGER_DEFAULT_VERSION: &str = proton_core::spec::CERT_MANAGER_CHART_VERSION;
pub const DEFAULT_INGRESS_CLASS: &str = "traefik-cert-manager";

/// What the add-ons are made from. `None` turns an add-on off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddonsParams {
    /// The gateway's Kubernetes node name (Traefik is pinned there).
    pub gateway_node_name: String,
    /// The gateway's public address. Not written into any object: Traefik answers on the
    /// gateway node's own addresses (host ports), and that node's ExternalIP is
    /// `node-external-ip` (set by the K3s config). Kept so callers can check the two agree.
    pub public_ip: Option<IpAddr>,
    /// The tunnel network: the allow-list's only source range.
    pub vpn_cidr: Cidr,
    pub ingress: Option<IngressParams>,
    pub tls: Option<TlsParams>,
    pub dashboard: Option<DashboardParams>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressParams {
    pub chart_version: String,
    pub class: String,
    /// Route Traefik's own dashboard here, VPN-only. `None`: not routed at all.
    pub dashboard_host: Option<String>,
    pub extra_ports: Vec<ExtraPort>,
}

/// An extra Traefik entry point (game servers, RTMP...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraPort {
    pub name: String,
    /// The port inside the pod (> 1024: Traefik runs unprivileged).
    pub port: u16,
    /// The port clients connect to on the gateway.
    pub exposed_port: u16,
    pub protocol: Protocol,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsParams {
    pub acme_email: String,
    pub chart_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardParams {
    pub kind: DashboardKind,
    pub chart_version: String,
    /// Expose the dashboard here, VPN-only. `None`: reach it with `kubectl port-forward`.
    pub host: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DashboardKind {
    /// Headlamp, the maintained successor (default).
    #[default]
    Headlamp,
    /// The Kubernetes Dashboard (archived upstream in 2026).
    KubernetesDashboard,
}

impl DashboardKind {
    pub fn default_chart_version(self) -> &'static str {
        match self {
            DashboardKind::Headlamp => HEADLAMP_DEFAULT_VERSION,
            DashboardKind::KubernetesDashboard => KUBERNETES_DASHBOARD_DEFAULT_VERSION,
        }
    }
}

impl AddonsParams {
    /// Every add-on on with pinned versions, nothing exposed beyond ingress itself.
    pub fn defaults(gateway_node_name: &str, vpn_cidr: Cidr, acme_email: &str) -> Self {
        AddonsParams {
            gateway_node_name: gateway_node_name.to_owned(),
            public_ip: None,
            vpn_cidr,
            ingress: Some(IngressParams {
                chart_version: TRAEFIK_DEFAULT_VERSION.to_owned(),
                class: DEFAULT_INGRESS_CLASS.to_owned(),
                dashboard_host: None,
                extra_ports: Vec::new(),
            }),
            tls: Some(TlsParams {
                acme_email: acme_email.to_owned(),
                chart_version: CERT_MANAGER_DEFAULT_VERSION.to_owned(),
            }),
            dashboard: Some(DashboardParams {
                kind: DashboardKind::Headlamp,
                chart_version: HEADLAMP_DEFAULT_VERSION.to_owned(),
                host: None,
            }),
        }
    }
}

/// Why add-ons could not be rendered. Each names the spec field and the fix.
#[derive(Debug, thiserror::Error)]
pub enum AddonsError {
    #[error(
        "{field} = `{value}` is not a valid DNS name (lowercase letters, digits, '-' and '.', e.g. app.example.org)"
    )]
    Host { field: &'static str, value: String },
    #[error(
        "{field} = `{value}` is not a valid Kubernetes name (lowercase letters, digits and '-', at most 63)"
    )]
    Name { field: &'static str, value: String },
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error(
        "acme email `{0}` is not an email address (Let's Encrypt writes to it about expiring certificates)"
    )]
    Email(String),
    #[error("extra port `{name}`: {reason}")]
    ExtraPort { name: String, reason: String },
    #[error("{what} needs {needs} to be enabled too")]
    Requires {
        what: &'static str,
        needs: &'static str,
    },
    #[error(
        "service `{value}`: {reason} (write it as NAMESPACE/SERVICE:PORT, e.g. default/web:8080)"
    )]
    Service { value: String, reason: String },
    #[error("manifest `{file}` is not valid YAML: {source}")]
    Parse {
        file: String,
        source: serde_norway::Error,
    },
    #[error("could not render YAML: {0}")]
    Yaml(serde_norway::Error),
}

/// RFC 1123 label: lowercase alphanumerics and '-', not at either end, 1..=63.
pub(crate) fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS subdomain of RFC 1123 labels (at most 253 characters).
pub(crate) fn is_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label)
}

/// A public host name for a certificate: a subdomain with at least two labels (HTTP-01
/// cannot issue wildcards).
pub(crate) fn check_host(field: &'static str, host: &str) -> Result<(), AddonsError> {
    if is_subdomain(host) && host.contains('.') {
        Ok(())
    } else {
        Err(AddonsError::Host {
            field,
            value: host.to_owned(),
        })
    }
}

fn check_nonempty(field: &'static str, v: &str) -> Result<(), AddonsError> {
    if v.trim().is_empty() || v.chars().any(char::is_whitespace) {
        Err(AddonsError::Empty { field })
    } else {
        Ok(())
    }
}

impl AddonsParams {
    /// Check the parameters before anything is rendered.
    pub fn validate(&self) -> Result<(), AddonsError> {
        if !is_subdomain(&self.gateway_node_name) {
            return Err(AddonsError::Name {
                field: "gateway node name",
                value: self.gateway_node_name.clone(),
            });
        }
        if let Some(i) = &self.ingress {
            check_nonempty("ingress.chart_version", &i.chart_version)?;
            if !is_label(&i.class) {
                return Err(AddonsError::Name {
                    field: "ingress.class",
                    value: i.class.clone(),
                });
            }
            if let Some(h) = &i.dashboard_host {
                check_host("ingress.dashboard_host", h)?;
                if self.tls.is_none() {
                    return Err(AddonsError::Requires {
                        what: "ingress.dashboard_host",
                        needs: "tls (cert-manager, for its certificate)",
                    });
                }
            }
        }
        if let Some(t) = &self.tls {
            check_nonempty("tls.chart_version", &t.chart_version)?;
            let e = &t.acme_email;
            let ok = e.split_once('@').is_some_and(|(user, domain)| {
                !user.is_empty() && domain.contains('.') && !domain.contains('@')
            }) && !e.chars().any(char::is_whitespace);
            if !ok {
                return Err(AddonsError::Email(e.clone()));
            }
            if self.ingress.is_none() {
                return Err(AddonsError::Requires {
                    what: "tls",
                    needs: "ingress (HTTP-01 challenges are answered through Traefik)",
                });
            }
        }
        if let Some(d) = &self.dashboard {
            check_nonempty("dashboard.chart_version", &d.chart_version)?;
            if let Some(h) = &d.host {
                check_host("dashboard.host", h)?;
                if self.ingress.is_none() || self.tls.is_none() {
                    return Err(AddonsError::Requires {
                        what: "dashboard.host",
                        needs: "ingress and tls",
                    });
                }
            }
        }
        Ok(())
    }
}

/// Every file for K3s's auto-deploy directory, always the same names ([`FILE_NAMES`]);
/// an add-on that is off has its file with no objects, so K3s prunes what it had.
pub fn render_manifests(p: &AddonsParams) -> Result<Vec<ManifestFile>, AddonsError> {
    p.validate()?;
    let mut traefik_chart = Vec::new();
    let mut traefik_routes = Vec::new();
    let mut cm_chart = Vec::new();
    let mut cm_issuers = Vec::new();
    let mut dash = Vec::new();
    let mut dash_routes = Vec::new();
    if let Some(i) = &p.ingress {
        traefik_chart.push(traefik::helm_chart(&p.gateway_node_name, i)?);
        traefik_routes.push(traefik::allowlist(&p.vpn_cidr));
        if let Some(host) = &i.dashboard_host {
            traefik_routes.extend(traefik::dashboard_route(host));
        }
    }
    if let (Some(t), Some(i)) = (&p.tls, &p.ingress) {
        cm_chart.push(certmanager::helm_chart(t)?);
        cm_issuers.extend(certmanager::issuers(t, &i.class));
    }
    if let Some(d) = &p.dashboard {
        dash.push(dashboard::helm_chart(d));
        dash.extend(dashboard::admin_account());
        if let Some(host) = &d.host {
            dash_routes.extend(dashboard::exposure(d, host));
        }
    }
    // Split so that one file's objects never wait on CRDs another file's chart installs:
    // K3s applies a file as a whole and retries it until it succeeds.
    let groups = [
        traefik_chart,
        traefik_routes,
        cm_chart,
        cm_issuers,
        dash,
        dash_routes,
    ];
    FILE_NAMES
        .iter()
        .zip(groups)
        .map(|(name, objects)| {
            Ok(ManifestFile {
                name: (*name).to_owned(),
                yaml: to_yaml(&objects)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
