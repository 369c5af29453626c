//! Reading the gateway's (or a node's) private key file.

use proton_core::host::{HostError, Root};
use proton_core::keys::{KeyError, PrivateKey};
use std::path::PathBuf;

/// Why a private key file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{} is missing", path.display())]
    Missing { path: PathBuf },
    #[error(transparent)]
    Read(#[from] HostError),
    #[error("reading {}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: KeyError,
    },
}

impl KeyFileError {
    pub fn hint(&self) -> Option<&str> {
        match self {
            KeyFileError::Missing { .. } => Some("run `proton init --endpoint HOST` first"),
            _ => None,
        }
    }
}

/// Reads a base64 private key file, warning when it is readable by others.
pub fn read_private_key(root: &Root, path: &str) -> Result<PrivateKey, KeyFileError> {
    let full = root.path(path);
    let text = root
        .read_optional(path)?
        .ok_or_else(|| KeyFileError::Missing { path: full.clone() })?;
    if let Ok(mode) = proton_core::host::mode_of(&full)
        && mode & 0o077 != 0
    {
        tracing::warn!(
            "{} is readable by others (mode {mode:o}): chmod 600 it",
            full.display()
        );
    }
    PrivateKey::from_base64(text.trim())
        .map_err(|source| KeyFileError::Parse { path: full, source })
}
