//! `proton dashboard token`: the dashboard's admin login token, read through the
//! Kubernetes API, and how to open the dashboard with it.

use proton_addons::{DashboardKind, dashboard_token_secret_ref, open_instructions};
use proton_core::host::Root;
use proton_core::spec::{self, Spec, SpecError};
use proton_k3s::api::{K3S_ADMIN_KUBECONFIG, client_from_file};
use std::path::PathBuf;
use zeroize::Zeroizing;

/// Why there is no token.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("{0}")]
    Spec(SpecError),
    #[error("the dashboard is off in the spec (dashboard.enabled = false)")]
    Off,
    #[error("--kubeconfig {}: no such file", .0.display())]
    NoKubeconfig(PathBuf),
    #[error(transparent)]
    K3s(#[from] proton_k3s::Error),
}

impl DashboardError {
    pub fn hint(&self) -> Option<&str> {
        match self {
            DashboardError::Off => Some(
                "set dashboard.enabled = true in /etc/proton/proton.toml and run `proton apply`",
            ),
            _ => None,
        }
    }

    /// The spec or the `--kubeconfig` named is at fault: exit code 2.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            DashboardError::Spec(_) | DashboardError::NoKubeconfig(_)
        )
    }
}

/// The token (zeroized when dropped) and what to do with it.
pub struct Token {
    pub token: Zeroizing<String>,
    /// How to reach the dashboard and log in, for stderr.
    pub instructions: String,
}

/// Reads the token with `kubeconfig` (else K3s's admin kubeconfig under the root). The
/// spec is optional (a laptop with `--kubeconfig` has none); when present it says
/// whether there is a dashboard at all, which one, and where it is exposed.
pub fn token(root: &Root, kubeconfig: Option<PathBuf>) -> Result<Token, DashboardError> {
    let spec = match Spec::load(root) {
        Ok(s) => Some(s),
        Err(SpecError::Missing { .. }) => None,
        Err(e) => return Err(DashboardError::Spec(e)),
    };
    if spec.as_ref().is_some_and(|s| !s.dashboard.enabled) {
        return Err(DashboardError::Off);
    }
    if let Some(p) = &kubeconfig
        && !p.exists()
    {
        return Err(DashboardError::NoKubeconfig(p.clone()));
    }
    let path = kubeconfig.unwrap_or_else(|| root.path(K3S_ADMIN_KUBECONFIG));
    let api = client_from_file(&path)?;
    let (namespace, name) = dashboard_token_secret_ref();
    let token = api.service_account_token(namespace, name)?;
    let (kind, host) = match &spec {
        Some(s) => (
            match s.dashboard.kind {
                spec::DashboardKind::Headlamp => DashboardKind::Headlamp,
                spec::DashboardKind::KubernetesDashboard => DashboardKind::KubernetesDashboard,
            },
            s.dashboard.host.as_deref(),
        ),
        None => (DashboardKind::default(), None),
    };
    Ok(Token {
        token,
        instructions: open_instructions(kind, host),
    })
}
