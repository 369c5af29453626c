//! Reach grants: what a client may reach beyond the default. A plain client reaches the
//! gateway's DNS, 80/443 and the internet (full tunnel); `admin` (`client add --admin`)
//! reaches everything a worker does: the kube API, kubelets, the workers; a named grant
//! ([`Allow`], `client add --allow w1:8080`) opens one port of one peer. Enforced by the
//! gateway's nftables table (sets `clients`, `admins` and `grants`).

use crate::audit::record;
use crate::peer::{NewPeer, PeerName, Role, live_by};
use crate::{Peer, Store, StoreError};
use proton_core::keys::PublicKey;
use proton_core::peer::{Allow, Flow};
use rusqlite::{Transaction, params};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// The live peer a grant names: a peer by its name, or the gateway by the word `gateway`.
fn target(tx: &Transaction<'_>, name: &PeerName) -> Result<Peer, StoreError> {
    if let Some(p) = live_by(tx, "name", name.as_str())? {
        return Ok(p);
    }
    if name.as_str() == "gateway"
        && let Some(p) = live_by(tx, "role", "gateway")?
    {
        return Ok(p);
    }
    Err(StoreError::NotFound(name.to_string()))
}

/// Records `allows` for the client `peer` inside the caller's transaction; every target
/// must be a live peer other than the client itself.
pub(crate) fn insert_allows(
    tx: &Transaction<'_>,
    peer: &Peer,
    allows: &[Allow],
) -> Result<(), StoreError> {
    if !allows.is_empty() && peer.role != Role::Client {
        return Err(StoreError::Invalid(format!(
            "only clients take grants: {} is a {} and already reaches {}",
            peer.name,
            peer.role.as_str(),
            if peer.role == Role::Worker {
                "the gateway, the workers and the cluster"
            } else {
                "every peer"
            }
        )));
    }
    for a in allows {
        let t = target(tx, &a.target)?;
        if t.id == peer.id {
            return Err(StoreError::Invalid(format!(
                "{a}: a client does not need a grant to reach itself"
            )));
        }
        tx.execute(
            "INSERT OR IGNORE INTO allows (peer_id, target_id, proto, port) VALUES (?1, ?2, ?3, ?4)",
            params![peer.id.0, t.id.0, a.proto.as_str(), a.port],
        )?;
    }
    Ok(())
}

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
            grants,
            ..NewPeer::default()
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

    /// Gives the live client `name` the grants in `add` and takes away those in
    /// `remove`, in one transaction (a target that is not a live peer changes nothing).
    /// Returns the client's grants afterwards and whether anything changed.
    pub fn change_allows(
        &mut self,
        name: &str,
        add: &[Allow],
        remove: &[Allow],
        actor: &str,
    ) -> Result<(Vec<Allow>, bool), StoreError> {
        self.write(|tx, _, now| {
            let peer =
                live_by(tx, "name", name)?.ok_or_else(|| StoreError::NotFound(name.into()))?;
            let before = allows_of(tx, &peer)?;
            insert_allows(tx, &peer, add)?;
            for a in remove {
                let t = target(tx, &a.target)?;
                tx.execute(
                    "DELETE FROM allows WHERE peer_id = ?1 AND target_id = ?2 AND proto = ?3 AND port = ?4",
                    params![peer.id.0, t.id.0, a.proto.as_str(), a.port],
                )?;
            }
            let after = allows_of(tx, &peer)?;
            let changed = before != after;
            if changed {
                let list: Vec<String> = after.iter().map(Allow::to_string).collect();
                record(
                    tx,
                    now,
                    actor,
                    "peer.allow",
                    name,
                    &format!("allow={}", list.join(",")),
                )?;
            }
            Ok((after, changed))
        })
    }

    /// Every named grant between two live peers, by address (what the firewall's set
    /// `grants` holds for the clients that are on the device).
    pub fn allowed_flows(&self) -> Result<BTreeSet<Flow>, StoreError> {
        let mut stmt = self.conn().prepare(
            "SELECT p.address, t.address, a.proto, a.port FROM allows a \
             JOIN peers p ON p.id = a.peer_id JOIN peers t ON t.id = a.target_id \
             WHERE p.revoked_at IS NULL AND t.revoked_at IS NULL",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, u16>(3)?,
            ))
        })?;
        let mut out = BTreeSet::new();
        for row in rows {
            let (from, to, proto, port) = row?;
            if let (Ok(from), Ok(to), Ok(proto)) = (from.parse(), to.parse(), proto.parse()) {
                out.insert(Flow {
                    from,
                    to,
                    proto,
                    port,
                });
            }
        }
        Ok(out)
    }

    /// The named grants of each live client that has any, by name (targets by their
    /// current names).
    pub fn allows_by_name(&self) -> Result<BTreeMap<String, Vec<Allow>>, StoreError> {
        let mut stmt = self.conn().prepare(
            "SELECT p.name, t.name, a.proto, a.port FROM allows a \
             JOIN peers p ON p.id = a.peer_id JOIN peers t ON t.id = a.target_id \
             WHERE p.revoked_at IS NULL AND t.revoked_at IS NULL \
             ORDER BY p.name, t.name, a.port, a.proto",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, u16>(3)?,
            ))
        })?;
        let mut out: BTreeMap<String, Vec<Allow>> = BTreeMap::new();
        for row in rows {
            let (name, target, proto, port) = row?;
            if let Ok(proto) = proto.parse() {
                out.entry(name).or_default().push(Allow {
                    target: PeerName::from_stored(target),
                    port,
                    proto,
                });
            }
        }
        Ok(out)
    }
}

/// The named grants `peer` holds now (live targets only), in a stable order.
fn allows_of(tx: &Transaction<'_>, peer: &Peer) -> Result<Vec<Allow>, StoreError> {
    let mut stmt = tx.prepare(
        "SELECT t.name, a.proto, a.port FROM allows a JOIN peers t ON t.id = a.target_id \
         WHERE a.peer_id = ?1 AND t.revoked_at IS NULL ORDER BY t.name, a.port, a.proto",
    )?;
    let rows = stmt.query_map([peer.id.0], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, u16>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (target, proto, port) = row?;
        if let Ok(proto) = proto.parse() {
            out.push(Allow {
                target: PeerName::from_stored(target),
                port,
                proto,
            });
        }
    }
    Ok(out)
}
