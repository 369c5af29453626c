//! Reach grants: what a client may reach beyond the default. A plain client reaches the
//! gateway's DNS, 80/443 and the internet (full tunnel); `admin` (`client add --admin`)
//! reaches everything a worker does: the kube API, kubelets, the workers. Enforced by
//! the gateway's nftables table (sets `clients` and `admins`).

use crate::peer::{NewPeer, PeerName, Role};
use crate::{Peer, Store, StoreError};
use proton_core::keys::PublicKey;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// The grants a client can be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Grant {
    /// Full reach, as a worker: the kube API, kubelets, every peer.
    Admin,
}

impl Grant {
    pub fn as_str(self) -> &'static str {
        match self {
            Grant::Admin => "admin",
        }
    }
}

impl Store {
    /// Adds an active peer with its grants, in one transaction (a crash leaves either
    /// both or neither).
    pub fn add_peer_granted(
        &mut self,
        name: &PeerName,
        role: Role,
        key: PublicKey,
        grants: &[Grant],
        actor: &str,
    ) -> Result<Peer, StoreError> {
        let extra = NewPeer {
            expires_at: None,
            grants,
        };
        self.add_peer_then(name, role, key, &extra, actor, |_| Ok::<_, StoreError>(()))
            .map(|(p, ())| p)
    }

    /// The addresses of live peers holding `grant`.
    pub fn granted_addresses(&self, grant: Grant) -> Result<BTreeSet<Ipv4Addr>, StoreError> {
        let mut stmt = self.conn().prepare(
            "SELECT p.address FROM grants g JOIN peers p ON p.id = g.peer_id \
             WHERE g.kind = ?1 AND p.revoked_at IS NULL",
        )?;
        let rows = stmt.query_map([grant.as_str()], |r| r.get::<_, String>(0))?;
        let mut out = BTreeSet::new();
        for a in rows {
            if let Ok(a) = a?.parse() {
                out.insert(a);
            }
        }
        Ok(out)
    }

    /// The grants of each live peer that has any, by name.
    pub fn grants_by_name(
        &self,
    ) -> Result<std::collections::BTreeMap<String, Vec<&'static str>>, StoreError> {
        let mut stmt = self.conn().prepare(
            "SELECT p.name, g.kind FROM grants g JOIN peers p ON p.id = g.peer_id \
             WHERE p.revoked_at IS NULL ORDER BY g.kind",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out: std::collections::BTreeMap<String, Vec<&'static str>> = Default::default();
        for row in rows {
            let (name, kind) = row?;
            if kind == Grant::Admin.as_str() {
                out.entry(name).or_default().push(Grant::Admin.as_str());
            }
        }
        Ok(out)
    }
}
