//! Reads from the Kubernetes API with a kubeconfig's own credentials: the cluster's CA,
//! and the user's client certificate (what K3s's admin `k3s.yaml` holds) or bearer token.
//!
//! The choice: a blocking HTTPS GET with ureq (rustls on ring, already used here for the
//! installer download) rather than the `kube` crate or shelling out to `kubectl`. Proton
//! reads one object by path; `kube` would bring an async client stack and a second TLS
//! configuration for that, and `kubectl` may not be on the machine (K3s ships it as a
//! symlink that a `--root` render does not have). Exec-plugin and auth-provider users
//! are refused with a clear error: K3s never writes them.
//!
//! Secrets read here are kept in [`Zeroizing`] buffers and never logged.
//!
//! ```no_run
//! use proton_k3s::api::{ApiClient, KubeconfigSource};
//! let yaml = std::fs::read_to_string("/etc/rancher/k3s/k3s.yaml").unwrap();
//! let api = ApiClient::from_kubeconfig(&yaml, KubeconfigSource::new("/etc/rancher/k3s/k3s.yaml")).unwrap();
//! let token = api.service_account_token("kube-system", "proton-admin-token").unwrap();
//! println!("{}", token.as_str());
//! ```

use crate::Error;
use base64::Engine;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};
use zeroize::Zeroizing;

/// K3s's admin kubeconfig on the server (`write-kubeconfig` default).
pub const K3S_ADMIN_KUBECONFIG: &str = "/etc/rancher/k3s/k3s.yaml";

/// How long one API call may take in total; the API answers in milliseconds when up.
const TIMEOUT: Duration = Duration::from_secs(15);
/// Larger answers are not a Secret Proton wrote.
const MAX_BODY: u64 = 1 << 20;

/// Where a kubeconfig came from: relative certificate paths inside it are relative to its
/// directory (as kubectl does), and errors name the file.
#[derive(Debug, Clone)]
pub struct KubeconfigSource {
    pub path: PathBuf,
}

impl KubeconfigSource {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        KubeconfigSource { path: path.into() }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Config {
    #[serde(default)]
    clusters: Vec<NamedCluster>,
    #[serde(default)]
    users: Vec<NamedUser>,
    #[serde(default)]
    contexts: Vec<NamedContext>,
    #[serde(default)]
    current_context: Option<String>,
}

#[derive(Deserialize)]
struct NamedCluster {
    name: String,
    cluster: Cluster,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Cluster {
    server: String,
    certificate_authority_data: Option<String>,
    certificate_authority: Option<PathBuf>,
    #[serde(default)]
    insecure_skip_tls_verify: bool,
}

#[derive(Deserialize)]
struct NamedUser {
    name: String,
    #[serde(default)]
    user: User,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct User {
    client_certificate_data: Option<String>,
    client_certificate: Option<PathBuf>,
    client_key_data: Option<Zeroizing<String>>,
    client_key: Option<PathBuf>,
    token: Option<Zeroizing<String>>,
    exec: Option<serde_norway::Value>,
    auth_provider: Option<serde_norway::Value>,
}

#[derive(Deserialize)]
struct NamedContext {
    name: String,
    context: Context,
}

#[derive(Deserialize)]
struct Context {
    cluster: String,
    user: String,
}

/// A client for one cluster's API, with the credentials of the kubeconfig's current
/// context.
pub struct ApiClient {
    agent: ureq::Agent,
    server: String,
    bearer: Option<Zeroizing<String>>,
}

fn bad(src: &KubeconfigSource, reason: impl Into<String>) -> Error {
    Error::KubeconfigInvalid {
        path: src.path.clone(),
        reason: reason.into(),
    }
}

/// Inline base64 `*-data`, else the file it names (relative to the kubeconfig).
fn pem_bytes(
    src: &KubeconfigSource,
    what: &str,
    data: Option<&str>,
    file: Option<&Path>,
) -> Result<Option<Zeroizing<Vec<u8>>>, Error> {
    if let Some(d) = data {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(d.trim())
            .map_err(|e| bad(src, format!("{what}-data is not base64: {e}")))?;
        return Ok(Some(Zeroizing::new(bytes)));
    }
    let Some(f) = file else { return Ok(None) };
    let full = match src.path.parent() {
        Some(dir) if f.is_relative() => dir.join(f),
        _ => f.to_path_buf(),
    };
    std::fs::read(&full)
        .map(|b| Some(Zeroizing::new(b)))
        .map_err(|e| bad(src, format!("{what} {}: {e}", full.display())))
}

impl ApiClient {
    /// A client for the kubeconfig's current context (or its only context).
    pub fn from_kubeconfig(yaml: &str, src: KubeconfigSource) -> Result<ApiClient, Error> {
        let cfg: Config = serde_norway::from_str(yaml).map_err(|e| bad(&src, e.to_string()))?;
        let ctx = match &cfg.current_context {
            Some(name) if !name.is_empty() => cfg
                .contexts
                .iter()
                .find(|c| &c.name == name)
                .ok_or_else(|| bad(&src, format!("current-context `{name}` is not defined")))?,
            _ => match cfg.contexts.as_slice() {
                [only] => only,
                _ => return Err(bad(&src, "no current-context")),
            },
        };
        let cluster = &cfg
            .clusters
            .iter()
            .find(|c| c.name == ctx.context.cluster)
            .ok_or_else(|| {
                bad(
                    &src,
                    format!("cluster `{}` is not defined", ctx.context.cluster),
                )
            })?
            .cluster;
        let user = &cfg
            .users
            .iter()
            .find(|u| u.name == ctx.context.user)
            .ok_or_else(|| bad(&src, format!("user `{}` is not defined", ctx.context.user)))?
            .user;
        if user.exec.is_some() || user.auth_provider.is_some() {
            return Err(bad(
                &src,
                "its user authenticates with an exec plugin or auth provider; use K3s's admin kubeconfig (client certificate)",
            ));
        }
        if !cluster.server.starts_with("https://") {
            return Err(bad(
                &src,
                format!("server `{}` is not an https:// URL", cluster.server),
            ));
        }

        let mut tls = TlsConfig::builder();
        if cluster.insecure_skip_tls_verify {
            tls = tls.disable_verification(true);
        } else {
            let ca = pem_bytes(
                &src,
                "certificate-authority",
                cluster.certificate_authority_data.as_deref(),
                cluster.certificate_authority.as_deref(),
            )?
            .ok_or_else(|| bad(&src, "the cluster has no certificate-authority"))?;
            let roots = ureq::tls::parse_pem(&ca)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<Vec<Certificate<'static>>, _>>()
                .map_err(|e| bad(&src, format!("certificate-authority: {e}")))?;
            if roots.is_empty() {
                return Err(bad(&src, "certificate-authority holds no certificate"));
            }
            tls = tls.root_certs(RootCerts::new_with_certs(&roots));
        }
        let cert = pem_bytes(
            &src,
            "client-certificate",
            user.client_certificate_data.as_deref(),
            user.client_certificate.as_deref(),
        )?;
        let key = pem_bytes(
            &src,
            "client-key",
            user.client_key_data.as_deref().map(String::as_str),
            user.client_key.as_deref(),
        )?;
        match (cert, key) {
            (Some(cert), Some(key)) => {
                let chain = Certificate::from_pem(&cert)
                    .map_err(|e| bad(&src, format!("client-certificate: {e}")))?;
                let key = PrivateKey::from_pem(&key)
                    .map_err(|e| bad(&src, format!("client-key: {e}")))?;
                tls = tls.client_cert(Some(ClientCert::new_with_certs(&[chain], key)));
            }
            (None, None) => {}
            _ => {
                return Err(bad(
                    &src,
                    "it has a client certificate without its key (or a key without its certificate)",
                ));
            }
        }
        if user.token.is_none()
            && user.client_certificate_data.is_none()
            && user.client_certificate.is_none()
        {
            return Err(bad(
                &src,
                "its user has neither a client certificate nor a token",
            ));
        }
        let agent = ureq::Agent::config_builder()
            .tls_config(tls.build())
            // Statuses are answers here (404 = not created yet), not transport errors.
            .http_status_as_error(false)
            // The API is local or on the tunnel; an HTTPS_PROXY meant for the internet
            // could not reach it and must not see the credentials' traffic.
            .proxy(None)
            .max_redirects(0)
            .timeout_global(Some(TIMEOUT))
            .build()
            .new_agent();
        Ok(ApiClient {
            agent,
            server: cluster.server.trim_end_matches('/').to_owned(),
            bearer: user.token.clone(),
        })
    }

    /// The API server's URL, e.g. `https://127.0.0.1:6443`.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// GET `path` (e.g. `/api/v1/namespaces/x/secrets/y`). `Ok(None)` on 404.
    pub fn get(&self, path: &str) -> Result<Option<Zeroizing<Vec<u8>>>, Error> {
        let url = format!("{}{path}", self.server);
        let mut req = self.agent.get(&url).header("Accept", "application/json");
        if let Some(t) = &self.bearer {
            req = req.header("Authorization", format!("Bearer {}", t.as_str()));
        }
        let mut resp = req.call().map_err(|e| Error::ApiUnreachable {
            server: self.server.clone(),
            reason: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        let mut body = Zeroizing::new(Vec::new());
        resp.body_mut()
            .as_reader()
            .take(MAX_BODY)
            .read_to_end(&mut body)
            .map_err(|e| Error::ApiUnreachable {
                server: self.server.clone(),
                reason: format!("reading the answer: {e}"),
            })?;
        match status {
            200 => Ok(Some(body)),
            404 => Ok(None),
            _ => Err(Error::ApiStatus {
                server: self.server.clone(),
                path: path.to_owned(),
                status,
                message: status_message(&body),
            }),
        }
    }

    /// A ServiceAccount token Secret's `data.token`, decoded. Errors say whether the
    /// Secret does not exist yet or exists but Kubernetes has not filled it in yet.
    pub fn service_account_token(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Zeroizing<String>, Error> {
        let path = format!("/api/v1/namespaces/{namespace}/secrets/{name}");
        let body = self.get(&path)?.ok_or_else(|| Error::SecretMissing {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })?;
        #[derive(Deserialize)]
        struct Secret {
            #[serde(default)]
            data: BTreeMap<String, Zeroizing<String>>,
        }
        let secret: Secret = serde_json::from_slice(&body).map_err(|e| Error::ApiStatus {
            server: self.server.clone(),
            path: path.clone(),
            status: 200,
            message: format!("not a Secret: {e}"),
        })?;
        let not_ready = || Error::TokenNotReady {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        let encoded = secret.data.get("token").ok_or_else(not_ready)?;
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(encoded.as_bytes())
                .map_err(|_| not_ready())?,
        );
        let token = std::str::from_utf8(&bytes).map_err(|_| not_ready())?;
        if token.trim().is_empty() {
            return Err(not_ready());
        }
        Ok(Zeroizing::new(token.trim().to_owned()))
    }
}

/// The `message` of a Kubernetes `Status` answer, else a short excerpt.
fn status_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Status {
        message: Option<String>,
    }
    serde_json::from_slice::<Status>(body)
        .ok()
        .and_then(|s| s.message)
        .unwrap_or_else(|| {
            String::from_utf8_lossy(&body[..body.len().min(200)])
                .trim()
                .to_owned()
        })
}

/// Reads the kubeconfig at `path` (a real path, already under any `--root`) and builds a
/// client from it; a missing file is [`Error::KubeconfigMissing`].
pub fn client_from_file(path: &Path) -> Result<ApiClient, Error> {
    let yaml = match std::fs::read(path) {
        Ok(bytes) => Zeroizing::new(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::KubeconfigMissing(path.to_path_buf()));
        }
        Err(e) => {
            return Err(Error::KubeconfigInvalid {
                path: path.to_path_buf(),
                reason: e.to_string(),
            });
        }
    };
    let text = std::str::from_utf8(&yaml).map_err(|_| Error::KubeconfigInvalid {
        path: path.to_path_buf(),
        reason: "not UTF-8 text".into(),
    })?;
    ApiClient::from_kubeconfig(text, KubeconfigSource::new(path))
}
