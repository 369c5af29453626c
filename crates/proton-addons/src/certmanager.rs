//! cert-manager (chart with its CRDs) and the two Let's Encrypt ClusterIssuers.

use crate::objects::{
    self, Acme, CERT_MANAGER_API, ClusterIssuer, ClusterIssuerSpec, Http01, Http01Ingress, Meta,
    Object, SecretRef, Solver,
};
use crate::{AddonsError, TlsParams};
use serde::Serialize;

pub const CERT_MANAGER_NAMESPACE: &str = "cert-manager";
pub const CERT_MANAGER_RELEASE: &str = "proton-cert-manager";
pub const CERT_MANAGER_REPO: &str = "https://charts.jetstack.io";
pub const STAGING_ISSUER: &str = "letsencrypt-staging";
pub const PROD_ISSUER: &str = "letsencrypt-prod";
const STAGING_SERVER: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";
const PROD_SERVER: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// Chart values (the schema has additionalProperties: false at every level).
#[derive(Debug, Serialize)]
pub struct CertManagerValues {
    pub crds: Crds,
}

#[derive(Debug, Serialize)]
pub struct Crds {
    pub enabled: bool,
    /// Keep the CRDs when the chart is uninstalled: deleting them would garbage-collect
    /// every Certificate (and its Secret reference) in the cluster.
    pub keep: bool,
}

pub fn helm_chart(p: &TlsParams) -> Result<Object, AddonsError> {
    let values = CertManagerValues {
        crds: Crds {
            enabled: true,
            keep: true,
        },
    };
    let yaml = serde_norway::to_string(&values).map_err(AddonsError::Yaml)?;
    Ok(objects::helm_chart(
        CERT_MANAGER_RELEASE,
        "cert-manager",
        CERT_MANAGER_REPO,
        &p.chart_version,
        CERT_MANAGER_NAMESPACE,
        Some(yaml),
    ))
}

/// `letsencrypt-staging` and `letsencrypt-prod`, solving HTTP-01 through `class`. Each
/// issuer has its own ACME account key: the two servers are different ACME CAs, and one
/// Secret shared by both (as in the walkthrough) would make them fight over it.
pub fn issuers(p: &TlsParams, class: &str) -> Vec<Object> {
    [(STAGING_ISSUER, STAGING_SERVER), (PROD_ISSUER, PROD_SERVER)]
        .into_iter()
        .map(|(name, server)| {
            Object::ClusterIssuer(ClusterIssuer {
                api_version: CERT_MANAGER_API,
                kind: "ClusterIssuer",
                metadata: Meta::cluster(name),
                spec: ClusterIssuerSpec {
                    acme: Acme {
                        email: p.acme_email.clone(),
                        server: server.to_owned(),
                        preferred_chain: "ISRG Root X1".to_owned(),
                        private_key_secret_ref: SecretRef {
                            name: format!("{name}-account-key"),
                        },
                        solvers: vec![Solver {
                            http01: Http01 {
                                ingress: Http01Ingress {
                                    ingress_class_name: class.to_owned(),
                                },
                            },
                        }],
                    },
                },
            })
        })
        .collect()
}
