//! `proton invite`: a single-use, expiring invitation, reserved in the DB.

use crate::gateway::{Gateway, GatewayError};
use proton_core::host::Root;
use proton_core::invite::Invitation;
use proton_store::{InvalidPeer, Peer, PeerName, Role};
use std::io::Write;
use std::net::Ipv4Addr;
use zeroize::Zeroizing;

/// Why `invite` failed.
#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    #[error(transparent)]
    Gateway(GatewayError),
    /// A bad name or role.
    #[error("{0}")]
    Invalid(InvalidPeer),
    #[error("--role: use worker or client")]
    GatewayRole,
    #[error("--ttl {0}")]
    Ttl(String),
    /// A removed worker of this name whose K8s node could not be deleted.
    #[error("cannot invite `{name}` yet: its old K8s node is not deleted: {error}")]
    OldNode { name: String, error: String },
}

crate::gateway::from_gateway_errors!(InviteError);

impl InviteError {
    pub fn hint(&self) -> Option<String> {
        match self {
            InviteError::Gateway(e) => e.hint(),
            InviteError::OldNode { .. } => Some(
                "once K3s answers, run `proton apply` (or invite again); or choose another name"
                    .into(),
            ),
            _ => None,
        }
    }

    pub fn is_bad_input(&self) -> bool {
        match self {
            InviteError::Gateway(e) => e.is_bad_input(),
            InviteError::OldNode { .. } => false,
            _ => true,
        }
    }
}

/// An invitation made and its peer reserved.
pub struct Invited {
    pub peer: Peer,
    /// What the new machine is given: `proton1-…`.
    pub text: Zeroizing<String>,
}

impl Invited {
    /// The line for the person at the terminal, before the invitation (`ttl` as typed).
    pub fn heading(&self, ttl: &str) -> String {
        format!(
            "Invitation for `{}` ({}, {}), single use, valid for {ttl}:",
            self.peer.name, self.peer.role, self.peer.address
        )
    }
}

/// `invite NAME --role ROLE --ttl TTL`. A removed worker of this name whose K8s node is
/// not deleted yet has it deleted first, saying so on `log` (with the node's line), or
/// the invitation is refused. Inviting anyway would be wrong either way: the old
/// node-password secret makes K3s refuse the new machine (k3s#7797), and a later retry
/// of the cleanup would delete the Node the new machine joined as.
pub fn invite(
    root: &Root,
    name: &str,
    role: &str,
    ttl: &str,
    log: &mut dyn Write,
) -> Result<Invited, InviteError> {
    let name: PeerName = name.parse().map_err(InviteError::Invalid)?;
    let role: Role = role.parse().map_err(InviteError::Invalid)?;
    if role == Role::Gateway {
        return Err(InviteError::GatewayRole);
    }
    let ttl = proton_core::time::parse_ttl(ttl).map_err(InviteError::Ttl)?;
    let mut gw = Gateway::load(root)?;
    if gw.store.node_cleanup_pending(name.as_str())? {
        let _ = writeln!(
            log,
            "`{name}` was removed but its K8s node is not deleted yet; deleting it first."
        );
        // All on `log`: stdout carries the invitation alone.
        let out = gw.run_pending_cleanups(Some(name.as_str()), true, &mut |node, done| {
            let _ = writeln!(log, "{}", crate::node_cleanup::deleted_line(node, done));
            if let Some(w) = crate::node_cleanup::token_warning(done) {
                let _ = writeln!(log, "{w}");
            }
        })?;
        if let Some((_, error)) = out.failed {
            return Err(InviteError::OldNode {
                name: name.to_string(),
                error,
            });
        }
    }
    let gateway_key = gw.private_key()?.public_key();
    let expires_at = proton_store::system_now() as u64 + ttl;
    let inv = Invitation::new(
        gw.spec.gateway.endpoint.clone(),
        gateway_key,
        gw.spec.network.cidr,
        Ipv4Addr::UNSPECIFIED,
        expires_at,
    );
    let (peer, _) = gw.store.reserve_invitation(
        &name,
        role,
        inv.throwaway.public_key(),
        &inv.secret_hash(),
        expires_at as i64,
        "cli",
    )?;
    let text = inv.with_address(peer.address).encode();
    Ok(Invited { peer, text })
}
