//! K3s join data for a worker that redeems its invitation: the server URL over the
//! tunnel, the server's K3s version, and a per-node bootstrap token with a short TTL
//! (`k3s token create --ttl`), never the server's own token.
//!
//! Only a gateway whose K3s server is installed hands this out: `k3s.enabled` in the
//! spec *and* a `k3s` binary under the root that reports its version. A gateway without
//! K3s (not applied yet, or `k3s.enabled = false`, as in a plain VPN) answers without
//! K3s data and `proton join` only makes the tunnel.

use proton_core::host::Bounded;
use proton_core::host::Root;
use proton_core::host::Runner;
use proton_core::spec::Spec;
use proton_k3s::gateway::{BOOTSTRAP_TOKEN_TTL, server_url};
use proton_k3s::install::{DEFAULT_K3S_BIN, installed_version};
use proton_k3s::tokens::{self, BootstrapToken};
use proton_proto::join::K3sJoin;

/// Why no bootstrap token could be minted.
#[derive(Debug, thiserror::Error)]
pub enum K3sError {
    #[error("minting the K3s bootstrap token: {0}")]
    Mint(#[source] proton_k3s::Error),
}

impl K3sError {
    /// What fixes it, when something does.
    pub fn hint(&self) -> Option<&str> {
        match self {
            K3sError::Mint(_) => Some(
                "check that the K3s server runs (`systemctl status k3s`); the worker can retry with the same invitation, which a failed mint leaves unused",
            ),
        }
    }
}

/// A minted token and the answer carrying it.
pub struct Minted {
    pub join: K3sJoin,
    pub token: BootstrapToken,
}

/// The `k3s` binary under `root`, as a program path.
pub fn k3s_program(root: &Root) -> String {
    root.path(DEFAULT_K3S_BIN).display().to_string()
}

/// The running server's version, `None` when this gateway has no K3s to join.
pub fn server_version(root: &Root, spec: &Spec) -> Option<String> {
    if !spec.k3s.enabled {
        return None;
    }
    installed_version(root, DEFAULT_K3S_BIN)
}

/// How long a `k3s` call from the join API may take: the API server being down must not
/// hold a redeem (and a blocking thread) forever; the worker retries with the same
/// invitation, which a failed mint leaves unused.
const K3S_CALL_TIMEOUT_SECS: u32 = 20;

/// `k3s` calls under coreutils' `timeout` ([`Bounded`], beside the other runners).
fn bounded() -> Bounded {
    Bounded::new(K3S_CALL_TIMEOUT_SECS)
}

/// Mints a bootstrap token for worker `node`; `Ok(None)` when the gateway has no K3s.
pub fn mint(root: &Root, spec: &Spec, node: &str) -> Result<Option<Minted>, K3sError> {
    mint_with(&bounded(), root, spec, node)
}

pub fn mint_with(
    runner: &dyn Runner,
    root: &Root,
    spec: &Spec,
    node: &str,
) -> Result<Option<Minted>, K3sError> {
    let Some(version) = server_version(root, spec) else {
        return Ok(None);
    };
    let token = tokens::create_token(runner, &k3s_program(root), node, BOOTSTRAP_TOKEN_TTL)
        .map_err(K3sError::Mint)?;
    let join = K3sJoin {
        server_url: server_url(spec),
        version,
        token: zeroize::Zeroizing::new(token.expose().to_string()),
    };
    Ok(Some(Minted { join, token }))
}

/// Keeps the token's ID so `proton peer remove` can delete it.
pub fn remember(root: &Root, node: &str, token: &BootstrapToken) {
    if let Err(e) = tokens::record_token_id(root, node, token) {
        tracing::warn!("could not record the bootstrap token ID of {node}: {e}");
    }
}

/// Keeps `token`'s ID in place of the one recorded for `node`, and deletes that earlier
/// token: a repeated answer replaces the token the lost answer carried.
pub fn replace(root: &Root, node: &str, token: &BootstrapToken) {
    let previous = tokens::recorded_token_id(root, node).ok().flatten();
    remember(root, node, token);
    if let Some(id) = previous.filter(|id| id != token.id())
        && let Err(e) = tokens::delete_token(&bounded(), &k3s_program(root), &id)
    {
        tracing::warn!("could not delete the bootstrap token {id} of {node}: {e}");
    }
}

/// Deletes a token minted for a redeem that then failed.
pub fn discard(root: &Root, token: &BootstrapToken) {
    if let Err(e) = tokens::delete_token(&bounded(), &k3s_program(root), token.id()) {
        tracing::warn!("could not delete an unused bootstrap token: {e}");
    }
}
