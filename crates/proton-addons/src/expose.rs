//! `proton expose`: the IngressRoute + Certificate a user writes by hand for each app.

use crate::files::to_yaml_with_header;
use crate::objects::{self, Object, RouteService};
use crate::{AddonsError, ManifestFile, check_host, is_label, traefik};
use std::str::FromStr;

/// `NAMESPACE/SERVICE:PORT`, e.g. `default/web:8080`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceTarget {
    pub namespace: String,
    pub name: String,
    pub port: u16,
}

impl FromStr for ServiceTarget {
    type Err = AddonsError;
    fn from_str(s: &str) -> Result<Self, AddonsError> {
        let err = |reason: &str| AddonsError::Service {
            value: s.to_owned(),
            reason: reason.to_owned(),
        };
        let (namespace, rest) = s.split_once('/').ok_or_else(|| err("no namespace"))?;
        let (name, port) = rest.rsplit_once(':').ok_or_else(|| err("no port"))?;
        if !is_label(namespace) {
            return Err(err("the namespace is not a valid Kubernetes name"));
        }
        if !is_label(name) {
            return Err(err("the service name is not a valid Kubernetes name"));
        }
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| err("the port is not a number from 1 to 65535"))?;
        Ok(ServiceTarget {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            port,
        })
    }
}

/// An IngressRoute on websecure for `host` to `service`, its Certificate from the
/// ClusterIssuer `issuer` (the spec's `tls.default_issuer`: `letsencrypt-prod` or
/// `letsencrypt-staging`), and, when `vpn_only`, the allow-list middleware. Both objects
/// go in the service's namespace (a Certificate's Secret must sit next to the route that
/// uses it).
pub fn expose(
    name: &str,
    host: &str,
    service: &str,
    vpn_only: bool,
    issuer: &str,
) -> Result<Vec<Object>, AddonsError> {
    if !is_label(name) {
        return Err(AddonsError::Name {
            field: "NAME",
            value: name.to_owned(),
        });
    }
    if !is_label(issuer) {
        return Err(AddonsError::Name {
            field: "tls.default_issuer",
            value: issuer.to_owned(),
        });
    }
    check_host("--host", host)?;
    let target: ServiceTarget = service.parse()?;
    let secret = format!("cert-{name}");
    let backend = RouteService {
        kind: None,
        name: target.name.clone(),
        namespace: None,
        port: Some(target.port),
        scheme: None,
        servers_transport: None,
    };
    Ok(vec![
        traefik::route(&target.namespace, name, host, backend, vpn_only, &secret),
        objects::certificate_from(&target.namespace, name, host, &secret, issuer),
    ])
}

/// K3s's auto-deploy directory on the server.
pub const MANIFESTS_DIR: &str = "/var/lib/rancher/k3s/server/manifests";

/// `proton-expose-NAME.yaml`: RFC 1123 (NAME is a label), never a packaged component's
/// name, never one of [`crate::FILE_NAMES`] (those never contain `expose`).
pub fn expose_file_name(name: &str) -> Result<String, AddonsError> {
    if !is_label(name) {
        return Err(AddonsError::Name {
            field: "NAME",
            value: name.to_owned(),
        });
    }
    Ok(format!("proton-expose-{name}.yaml"))
}

/// The auto-deploy file for [`expose`]'s objects.
pub fn expose_manifest(
    name: &str,
    host: &str,
    service: &str,
    vpn_only: bool,
    issuer: &str,
) -> Result<ManifestFile, AddonsError> {
    let objects = expose(name, host, service, vpn_only, issuer)?;
    let header = format!(
        "# Written by `proton expose {name}`; remove with `proton expose {name} --remove`.\n"
    );
    Ok(ManifestFile {
        name: expose_file_name(name)?,
        yaml: to_yaml_with_header(&header, &objects)?,
    })
}

/// The same file with no objects: K3s prunes what it held (deleting the file instead
/// would leave the route and certificate in the cluster forever).
pub fn unexpose_manifest(name: &str) -> Result<ManifestFile, AddonsError> {
    let header = format!(
        "# Written by `proton expose {name} --remove`: nothing exposed. Kept so K3s prunes what this file held.\n"
    );
    Ok(ManifestFile {
        name: expose_file_name(name)?,
        yaml: to_yaml_with_header(&header, &[])?,
    })
}

/// The host names that only VPN clients may reach, read from a manifest file's YAML:
/// every `Host(`…`)` in the match of an IngressRoute route that uses the VPN allow-list
/// middleware (what `proton expose --vpn-only` and the dashboard routes write). Lowercase;
/// documents that do not parse are skipped (a hand-edited file must not stop the rest).
pub fn vpn_only_hosts(yaml: &str) -> Vec<String> {
    use serde::Deserialize;
    let mut hosts = Vec::new();
    for doc in serde_norway::Deserializer::from_str(yaml) {
        let Ok(value) = serde_norway::Value::deserialize(doc) else {
            continue;
        };
        if value.get("kind").and_then(|k| k.as_str()) != Some("IngressRoute") {
            continue;
        }
        let routes = value
            .get("spec")
            .and_then(|s| s.get("routes"))
            .and_then(|r| r.as_sequence());
        for route in routes.into_iter().flatten() {
            let allow_listed = route
                .get("middlewares")
                .and_then(|m| m.as_sequence())
                .is_some_and(|m| {
                    m.iter().any(|m| {
                        m.get("name").and_then(|n| n.as_str()) == Some(traefik::ALLOWLIST_NAME)
                    })
                });
            let Some(rule) = route.get("match").and_then(|m| m.as_str()) else {
                continue;
            };
            if allow_listed {
                hosts.extend(hosts_in_rule(rule));
            }
        }
    }
    hosts
}

/// The names in every ``Host(`a`, `b`)`` of a Traefik rule.
fn hosts_in_rule(rule: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = rule;
    while let Some(i) = rest.find("Host(") {
        rest = &rest[i + "Host(".len()..];
        let Some(end) = rest.find(')') else { break };
        for part in rest[..end].split(',') {
            let name = part
                .trim()
                .trim_matches('`')
                .trim_matches('"')
                .to_ascii_lowercase();
            if !name.is_empty() {
                out.push(name);
            }
        }
        rest = &rest[end..];
    }
    out
}

#[cfg(test)]
mod vpn_hosts_tests {
    use super::*;

    #[test]
    fn only_allow_listed_routes_are_vpn_only_hosts() {
        let vpn = expose_manifest(
            "grafana",
            "grafana.example.org",
            "mon/grafana:80",
            true,
            "letsencrypt-prod",
        )
        .unwrap();
        assert_eq!(vpn_only_hosts(&vpn.yaml), ["grafana.example.org"]);
        let public = expose_manifest(
            "blog",
            "blog.example.org",
            "web/blog:8080",
            false,
            "letsencrypt-prod",
        )
        .unwrap();
        assert!(vpn_only_hosts(&public.yaml).is_empty());
        assert!(vpn_only_hosts(&unexpose_manifest("grafana").unwrap().yaml).is_empty());
        let dash = crate::files::to_yaml(&traefik::dashboard_route("traefik.example.org")).unwrap();
        assert_eq!(vpn_only_hosts(&dash), ["traefik.example.org"]);
        assert!(vpn_only_hosts("::: not yaml").is_empty());
        assert_eq!(
            hosts_in_rule("Host(`a.example`, `b.example`) || Host(`c.example`)"),
            ["a.example", "b.example", "c.example"]
        );
    }
}
