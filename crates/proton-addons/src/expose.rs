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
