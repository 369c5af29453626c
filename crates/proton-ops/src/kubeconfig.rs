//! `proton kubeconfig [--merge [FILE]]`: K3s's admin kubeconfig rewritten to reach the
//! server over the tunnel, under the gateway's name; printed, or merged into a
//! kubeconfig file beside the contexts already there.

use proton_core::host::{HostError, Root, SECRET_MODE, write_atomic};
use proton_core::spec::{Spec, SpecError};
use proton_k3s::config::ADMIN_KUBECONFIG_PATH;
use proton_k3s::gateway::server_url;
use std::path::{Path, PathBuf};

/// Said (on stderr) wherever the credential goes.
pub const WARNING: &str = "warning: this kubeconfig is the cluster-admin credential (full control of the cluster): keep it 0600, never commit or share it";

/// Why there is no kubeconfig to give.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("{0}")]
    Spec(#[from] SpecError),
    #[error("{} is missing: K3s is not installed on this gateway", .0.display())]
    NotInstalled(PathBuf),
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    K3s(#[from] proton_k3s::Error),
}

impl KubeconfigError {
    pub fn hint(&self) -> Option<&str> {
        match self {
            KubeconfigError::NotInstalled(_) => {
                Some("run `proton apply` first (it installs the K3s server)")
            }
            _ => None,
        }
    }

    /// The spec is at fault: exit code 2.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, KubeconfigError::Spec(_))
    }
}

/// The gateway's kubeconfig: cluster, context and user named after the gateway.
#[derive(Debug)]
pub struct Kubeconfig {
    pub name: String,
    pub yaml: String,
}

/// The admin kubeconfig K3s wrote, pointed at the server's tunnel address.
pub fn admin(root: &Root) -> Result<Kubeconfig, KubeconfigError> {
    let spec = Spec::load(root)?;
    let admin = root
        .read_optional(ADMIN_KUBECONFIG_PATH)?
        .ok_or_else(|| KubeconfigError::NotInstalled(root.path(ADMIN_KUBECONFIG_PATH)))?;
    let name = spec.gateway.name.clone();
    let yaml = proton_k3s::kubeconfig::rewrite(&admin, &server_url(&spec), &name)?;
    Ok(Kubeconfig { name, yaml })
}

/// Where [`Kubeconfig::merge_into`] merged it.
#[derive(Debug)]
pub struct Merged {
    pub name: String,
    pub target: PathBuf,
}

impl Kubeconfig {
    /// Merges it into the kubeconfig file `target` (made if missing; `0600`), leaving
    /// the other clusters, contexts and users there alone.
    pub fn merge_into(&self, target: &Path) -> Result<Merged, KubeconfigError> {
        let existing = match std::fs::read_to_string(target) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(KubeconfigError::Read {
                    path: target.to_owned(),
                    source,
                });
            }
        };
        let merged = proton_k3s::kubeconfig::merge(&existing, &self.yaml)?;
        write_atomic(target, merged.as_bytes(), SECRET_MODE)?;
        Ok(Merged {
            name: self.name.clone(),
            target: target.to_owned(),
        })
    }
}

impl std::fmt::Display for Merged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = &self.name;
        writeln!(
            f,
            "Merged cluster, context and user `{name}` into {} (mode 0600; other contexts untouched).",
            self.target.display()
        )?;
        writeln!(
            f,
            "Use it from any machine on the VPN: kubectl --context {name} get nodes"
        )
    }
}
