//! This machine's own WireGuard key ([`crate::NODE_KEY`]): made once, saved before
//! anything is sent with it, reused by a re-run.

use crate::NODE_KEY;
use proton_core::host::{HostError, Root};
use proton_core::keys::PrivateKey;

pub use proton_core::keys::{KeyFileError, read_private_key};

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
