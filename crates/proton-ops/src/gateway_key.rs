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

/// Reads a base64 private key file, warning when it is readable by others (the one
/// reader, [`proton_core::keys::read_private_key`], with "missing" as an error and its fix).
pub fn read_private_key(root: &Root, path: &str) -> Result<PrivateKey, KeyFileError> {
    use proton_core::keys::KeyFileError as Core;
    match proton_core::keys::read_private_key(root, path) {
        Ok(Some(key)) => Ok(key),
        Ok(None) => Err(KeyFileError::Missing {
            path: root.path(path),
        }),
        Err(Core::Host(e)) => Err(KeyFileError::Read(e)),
        Err(Core::Parse { path, source }) => Err(KeyFileError::Parse { path, source }),
    }
}
