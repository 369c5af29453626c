//! This machine's own WireGuard key ([`crate::NODE_KEY`]): made once, saved before
//! anything is sent with it, reused by a re-run.

use crate::NODE_KEY;
use proton_core::host::{HostError, Root};
use proton_core::keys::{KeyError, PrivateKey};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("reading {}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: KeyError,
    },
}

/// Reads a base64 private key file (`None`: there is none), warning when it is
/// readable by others.
pub fn read_private_key(root: &Root, path: &str) -> Result<Option<PrivateKey>, KeyFileError> {
    let full = root.path(path);
    let Some(text) = root.read_optional(path)? else {
        return Ok(None);
    };
    if let Ok(mode) = proton_core::host::mode_of(&full)
        && mode & 0o077 != 0
    {
        tracing::warn!(
            "{} is readable by others (mode {mode:o}): chmod 600 it",
            full.display()
        );
    }
    PrivateKey::from_base64(text.trim())
        .map(Some)
        .map_err(|source| KeyFileError::Parse { path: full, source })
}

/// This machine's key from an earlier run of `proton join`, if there was one.
pub fn existing(root: &Root) -> Result<Option<PrivateKey>, KeyFileError> {
    read_private_key(root, NODE_KEY)
}

/// Makes this machine's key and saves it (`0600`) before anything is sent with it.
pub fn create(root: &Root) -> Result<PrivateKey, HostError> {
    let key = PrivateKey::generate();
    let mut text = key.expose_base64();
    text.push('\n');
    root.write_secret(NODE_KEY, text.as_bytes())?;
    Ok(key)
}
