//! `proton expose`: the IngressRoute + Certificate a user writes by hand for each app.

use crate::objects::{self, Object, RouteService};
use crate::{AddonsError, check_host, is_label, traefik};
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

/// An IngressRoute on websecure for `host` to `service`, its Let's Encrypt Certificate,
/// and, when `vpn_only`, the allow-list middleware. Both objects go in the service's
/// namespace (a Certificate's Secret must sit next to the route that uses it).
pub fn expose(
    name: &str,
    host: &str,
    service: &str,
    vpn_only: bool,
) -> Result<Vec<Object>, AddonsError> {
    if !is_label(name) {
        return Err(AddonsError::Name {
            field: "NAME",
            value: name.to_owned(),
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
        objects::certificate(&target.namespace, name, host, &secret),
    ])
}
