//! The `peers` table: who is in the network, with which key and address.

use crate::audit::record;
use crate::grant::Grant;
use crate::{Store, StoreError};
use proton_core::keys::PublicKey;
use proton_core::net::Cidr;
use proton_core::peer::Allow;
pub use proton_core::peer::{InvalidPeer, PeerName, Role};
use rusqlite::{OptionalExtension, Row, Transaction, params};
use serde::Serialize;
use std::collections::HashSet;
use std::fmt;
use std::net::Ipv4Addr;

/// A peer's row id. Stable for the peer's life, never reused after it is revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct PeerId(pub i64);

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl rusqlite::ToSql for PeerId {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        self.0.to_sql()
    }
}

/// Whether a peer has joined or still holds an invitation's throw-away key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerState {
    /// Reserved by an invitation: its key is the throw-away one, it may only reach the
    /// join API.
    Invited,
    Active,
}

/// One row of `peers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Peer {
    pub id: PeerId,
    pub name: PeerName,
    pub role: Role,
    pub public_key: PublicKey,
    pub address: Ipv4Addr,
    pub state: PeerState,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    /// When it was disabled (`proton client disable`): key and address kept, off the device.
    pub disabled_at: Option<i64>,
    /// When the daemon cuts it off (`proton client add --expires`), unix seconds.
    pub expires_at: Option<i64>,
}

impl Peer {
    /// Whether the device should carry this peer at `now`: live, enabled, not expired.
    pub fn on_device(&self, now: i64) -> bool {
        self.revoked_at.is_none()
            && self.disabled_at.is_none()
            && self.expires_at.is_none_or(|t| t > now)
    }

    /// Whether its expiry has passed at `now`.
    pub fn expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

pub(crate) const PEER_COLUMNS: &str =
    "id, name, role, public_key, address, state, created_at, revoked_at, disabled_at, expires_at";

pub(crate) fn peer_from_row(r: &Row<'_>) -> rusqlite::Result<Peer> {
    let bad = |i: usize, e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    };
    let role: String = r.get(2)?;
    let key: String = r.get(3)?;
    let address: String = r.get(4)?;
    let state: String = r.get(5)?;
    Ok(Peer {
        id: PeerId(r.get(0)?),
        name: PeerName::from_stored(r.get(1)?),
        role: role
            .parse()
            .map_err(|e: InvalidPeer| bad(2, e.to_string()))?,
        public_key: PublicKey::from_base64(&key).map_err(|e| bad(3, e.to_string()))?,
        address: address.parse().map_err(|_| bad(4, address.clone()))?,
        state: match state.as_str() {
            "invited" => PeerState::Invited,
            "active" => PeerState::Active,
            other => return Err(bad(5, format!("unknown peer state `{other}`"))),
        },
        created_at: r.get(6)?,
        revoked_at: r.get(7)?,
        disabled_at: r.get(8)?,
        expires_at: r.get(9)?,
    })
}

pub(crate) fn live_by(
    tx: &rusqlite::Connection,
    column: &str,
    value: &str,
) -> Result<Option<Peer>, StoreError> {
    let sql =
        format!("SELECT {PEER_COLUMNS} FROM peers WHERE {column} = ?1 AND revoked_at IS NULL");
    Ok(tx.query_row(&sql, [value], peer_from_row).optional()?)
}

/// What a new active peer may carry beyond its name, role and key.
#[derive(Debug, Clone, Copy, Default)]
pub struct NewPeer<'a> {
    /// When the daemon cuts it off (unix seconds, in the future).
    pub expires_at: Option<i64>,
    /// Reach beyond its role's default (`client add --admin`).
    pub grants: &'a [Grant],
    /// Named grants (`client add --allow w1:8080`): one port of one live peer each.
    pub allows: &'a [Allow],
}

/// A new active peer with its expiry and grants, and the audit detail that says so.
fn insert_new(
    tx: &Transaction<'_>,
    cidr: &Cidr,
    name: &PeerName,
    role: Role,
    key: PublicKey,
    extra: &NewPeer<'_>,
    now: i64,
) -> Result<(Peer, String), StoreError> {
    let mut peer = insert_peer(tx, cidr, name, role, key, PeerState::Active, None, now)?;
    if let Some(at) = extra.expires_at {
        if at <= now {
            return Err(StoreError::Invalid(
                "the expiry must be in the future".into(),
            ));
        }
        tx.execute(
            "UPDATE peers SET expires_at = ?1 WHERE id = ?2",
            params![at, peer.id],
        )?;
        peer.expires_at = Some(at);
    }
    for g in extra.grants {
        tx.execute(
            "INSERT OR IGNORE INTO grants (peer_id, kind) VALUES (?1, ?2)",
            params![peer.id.0, g.as_str()],
        )?;
    }
    crate::grant::insert_allows(tx, &peer, extra.allows)?;
    let list: Vec<&str> = extra.grants.iter().map(|g| g.as_str()).collect();
    let mut detail = peer_detail(&peer);
    if !list.is_empty() {
        detail = format!("{detail} grants={}", list.join(","));
    }
    if !extra.allows.is_empty() {
        let allows: Vec<String> = extra.allows.iter().map(Allow::to_string).collect();
        detail = format!("{detail} allow={}", allows.join(","));
    }
    Ok((peer, detail))
}

/// Picks the lowest free address and inserts the peer; inside the caller's transaction.
/// The checks before the INSERT are race-free because every writer holds the
/// `BEGIN IMMEDIATE` lock; the partial unique indexes are the backstop.
#[allow(clippy::too_many_arguments)] // one call per column; a struct would only rename them
pub(crate) fn insert_peer(
    tx: &Transaction<'_>,
    cidr: &Cidr,
    name: &PeerName,
    role: Role,
    key: PublicKey,
    state: PeerState,
    address: Option<Ipv4Addr>,
    created_at: i64,
) -> Result<Peer, StoreError> {
    if live_by(tx, "name", name.as_str())?.is_some() {
        return Err(StoreError::NameTaken(name.to_string()));
    }
    crate::cleanup::refuse_pending(tx, name.as_str())?;
    if let Some(other) = live_by(tx, "public_key", &key.to_base64())? {
        return Err(StoreError::KeyTaken(other.name.to_string()));
    }
    let address = match address {
        Some(a) => {
            if live_by(tx, "address", &a.to_string())?.is_some() {
                return Err(StoreError::AddressTaken(a));
            }
            a
        }
        None => {
            let mut stmt = tx.prepare("SELECT address FROM peers WHERE revoked_at IS NULL")?;
            let used: HashSet<Ipv4Addr> = stmt
                .query_map([], |r| r.get::<_, String>(0))?
                .filter_map(|a| a.ok()?.parse().ok())
                .collect();
            cidr.first_free(&used)
                .ok_or_else(|| StoreError::Exhausted {
                    cidr: cidr.to_string(),
                    used: used.iter().filter(|a| cidr.is_assignable(**a)).count(),
                })?
        }
    };
    let state_text = match state {
        PeerState::Invited => "invited",
        PeerState::Active => "active",
    };
    tx.execute(
        "INSERT INTO peers (name, role, public_key, address, state, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![name.as_str(), role.as_str(), key.to_base64(), address.to_string(), state_text, created_at],
    )?;
    Ok(Peer {
        id: PeerId(tx.last_insert_rowid()),
        name: name.clone(),
        role,
        public_key: key,
        address,
        state,
        created_at,
        revoked_at: None,
        disabled_at: None,
        expires_at: None,
    })
}

impl Store {
    /// Registers the gateway itself at the network's first host address.
    pub fn add_gateway(&mut self, name: &str, key: PublicKey) -> Result<Peer, StoreError> {
        let name: PeerName = name.parse()?;
        self.write(|tx, cidr, now| {
            let exists: i64 = tx.query_row(
                "SELECT count(*) FROM peers WHERE role = 'gateway' AND revoked_at IS NULL",
                [],
                |r| r.get(0),
            )?;
            if exists > 0 {
                return Err(StoreError::GatewayExists);
            }
            let peer = insert_peer(
                tx,
                cidr,
                &name,
                Role::Gateway,
                key,
                PeerState::Active,
                Some(cidr.gateway()),
                now,
            )?;
            record(
                tx,
                now,
                "init",
                "gateway.create",
                name.as_str(),
                &peer_detail(&peer),
            )?;
            Ok(peer)
        })
    }

    /// Adds a peer with a fresh address (the lowest free one).
    pub fn add_peer(
        &mut self,
        name: &PeerName,
        role: Role,
        key: PublicKey,
        actor: &str,
    ) -> Result<Peer, StoreError> {
        self.add_peer_expiring(name, role, key, None, actor)
    }

    /// [`Store::add_peer`] with an expiry (unix seconds): the daemon takes the peer off
    /// the device once `expires_at` has passed. Both in one transaction.
    pub fn add_peer_expiring(
        &mut self,
        name: &PeerName,
        role: Role,
        key: PublicKey,
        expires_at: Option<i64>,
        actor: &str,
    ) -> Result<Peer, StoreError> {
        let extra = NewPeer {
            expires_at,
            ..NewPeer::default()
        };
        self.write(|tx, cidr, now| {
            let (peer, detail) = insert_new(tx, cidr, name, role, key, &extra, now)?;
            record(tx, now, actor, "peer.add", name.as_str(), &detail)?;
            Ok(peer)
        })
    }

    /// [`Store::add_peer`], committed only once `then` succeeded with the new row:
    /// for a peer whose private key is shown once (`client add`), `then` shows it, so a
    /// command that dies before the key is out leaves no peer whose key nobody saw.
    /// The write lock is held while `then` runs; keep it short.
    pub fn add_peer_then<T, E: From<StoreError>>(
        &mut self,
        name: &PeerName,
        role: Role,
        key: PublicKey,
        extra: &NewPeer<'_>,
        actor: &str,
        then: impl FnOnce(&Peer) -> Result<T, E>,
    ) -> Result<(Peer, T), E> {
        self.write(|tx, cidr, now| {
            let (peer, detail) = insert_new(tx, cidr, name, role, key, extra, now)?;
            record(tx, now, actor, "peer.add", name.as_str(), &detail)?;
            let out = then(&peer)?;
            Ok((peer, out))
        })
    }

    /// Disables (`true`) or enables (`false`) a live peer that is not the gateway. Its
    /// row, key and address stay; the daemon takes it off (or puts it back on) the device.
    /// Returns the peer and whether anything changed (disabling twice is a no-op).
    pub fn set_disabled(
        &mut self,
        name: &str,
        disabled: bool,
        actor: &str,
    ) -> Result<(Peer, bool), StoreError> {
        self.write(|tx, _, now| {
            let mut peer =
                live_by(tx, "name", name)?.ok_or_else(|| StoreError::NotFound(name.into()))?;
            if peer.role == Role::Gateway {
                return Err(StoreError::IsGateway(name.into()));
            }
            if peer.disabled_at.is_some() == disabled {
                return Ok((peer, false));
            }
            let at = disabled.then_some(now);
            tx.execute(
                "UPDATE peers SET disabled_at = ?1 WHERE id = ?2",
                params![at, peer.id],
            )?;
            peer.disabled_at = at;
            let action = if disabled {
                "peer.disable"
            } else {
                "peer.enable"
            };
            record(tx, now, actor, action, name, &peer_detail(&peer))?;
            Ok((peer, true))
        })
    }

    /// Revokes a peer: it leaves the device at the next reconcile; its name and address
    /// become free. Pending invitations for it are cancelled.
    pub fn remove_peer(&mut self, name: &str, actor: &str) -> Result<Peer, StoreError> {
        self.remove_peer_inner(name, actor, false)
    }

    /// [`Store::remove_peer`], and when the peer is a worker, also records (in the same
    /// transaction) that its K8s node is still to be deleted ([`Store::node_cleanups`]).
    /// For gateways running K3s: a crash or a K3s outage after this cannot lose the
    /// cleanup, and the name stays reserved until [`Store::node_cleanup_done`].
    pub fn remove_peer_queue_node_cleanup(
        &mut self,
        name: &str,
        actor: &str,
    ) -> Result<Peer, StoreError> {
        self.remove_peer_inner(name, actor, true)
    }

    fn remove_peer_inner(
        &mut self,
        name: &str,
        actor: &str,
        queue_cleanup: bool,
    ) -> Result<Peer, StoreError> {
        self.write(|tx, _, now| {
            let mut peer =
                live_by(tx, "name", name)?
                    .ok_or_else(|| StoreError::NotFound(proton_core::clip(name)))?;
            if peer.role == Role::Gateway {
                return Err(StoreError::IsGateway(name.into()));
            }
            let at = now;
            tx.execute("UPDATE peers SET revoked_at = ?1 WHERE id = ?2", params![at, peer.id])?;
            tx.execute(
                "UPDATE invitations SET expires_at = min(expires_at, ?1) WHERE peer_id = ?2 AND redeemed_at IS NULL",
                params![at, peer.id],
            )?;
            peer.revoked_at = Some(at);
            record(tx, now, actor, "peer.remove", name, &peer_detail(&peer))?;
            if queue_cleanup && peer.role == Role::Worker {
                crate::cleanup::queue(tx, name, now)?;
            }
            Ok(peer)
        })
    }

    /// Renames a live peer.
    pub fn rename_peer(
        &mut self,
        old: &str,
        new: &PeerName,
        actor: &str,
    ) -> Result<Peer, StoreError> {
        self.write(|tx, _, now| {
            let mut peer = live_by(tx, "name", old)?
                .ok_or_else(|| StoreError::NotFound(proton_core::clip(old)))?;
            if peer.role == Role::Gateway {
                return Err(StoreError::IsGateway(old.into()));
            }
            if live_by(tx, "name", new.as_str())?.is_some() {
                return Err(StoreError::NameTaken(new.to_string()));
            }
            crate::cleanup::refuse_pending(tx, new.as_str())?;
            tx.execute(
                "UPDATE peers SET name = ?1 WHERE id = ?2",
                params![new.as_str(), peer.id],
            )?;
            peer.name = new.clone();
            let detail = serde_json::json!({ "from": old, "to": new.as_str() }).to_string();
            record(tx, now, actor, "peer.rename", new.as_str(), &detail)?;
            Ok(peer)
        })
    }

    pub fn peer_by_name(&self, name: &str) -> Result<Option<Peer>, StoreError> {
        live_by(self.conn(), "name", name)
    }

    pub fn peer_by_address(&self, address: Ipv4Addr) -> Result<Option<Peer>, StoreError> {
        live_by(self.conn(), "address", &address.to_string())
    }

    pub fn peer_by_key(&self, key: &PublicKey) -> Result<Option<Peer>, StoreError> {
        live_by(self.conn(), "public_key", &key.to_base64())
    }

    /// Every peer, the gateway included, oldest first.
    pub fn list_peers(&self, include_revoked: bool) -> Result<Vec<Peer>, StoreError> {
        let filter = if include_revoked {
            ""
        } else {
            "WHERE revoked_at IS NULL"
        };
        let sql = format!("SELECT {PEER_COLUMNS} FROM peers {filter} ORDER BY id");
        let mut stmt = self.conn().prepare(&sql)?;
        let rows = stmt.query_map([], peer_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The peers the data plane should have: every live peer but the gateway,
    /// including invitees (their throw-away key may reach the join API).
    pub fn active_peers(&self) -> Result<Vec<Peer>, StoreError> {
        Ok(self
            .list_peers(false)?
            .into_iter()
            .filter(|p| p.role != Role::Gateway)
            .collect())
    }

    /// The peers the device should carry at `now`: [`Store::active_peers`] without the
    /// disabled and the expired ones.
    pub fn device_peers(&self, now: i64) -> Result<Vec<Peer>, StoreError> {
        Ok(self
            .active_peers()?
            .into_iter()
            .filter(|p| p.on_device(now))
            .collect())
    }

    /// The earliest expiry still ahead of `now`, if any: when the daemon must look again.
    pub fn next_expiry(&self, now: i64) -> Result<Option<i64>, StoreError> {
        Ok(self.conn().query_row(
            "SELECT min(expires_at) FROM peers WHERE revoked_at IS NULL AND expires_at > ?1",
            [now],
            |r| r.get(0),
        )?)
    }

    /// The redeemed peers whose throw-away key the device still carries at `now_ms`
    /// (unix milliseconds): each peer's id and that key. The peer is active in the DB, but
    /// until its `swap_after` the device holds it as the invitee it was.
    pub fn held_keys(&self, now_ms: i64) -> Result<Vec<(PeerId, PublicKey)>, StoreError> {
        let mut stmt = self.conn().prepare(
            "SELECT id, swap_key FROM peers \
             WHERE revoked_at IS NULL AND swap_key IS NOT NULL AND swap_after > ?1",
        )?;
        let rows = stmt.query_map([now_ms], |r| {
            let key: String = r.get(1)?;
            let key = PublicKey::from_base64(&key).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    1,
                    rusqlite::types::Type::Text,
                    e.to_string().into(),
                )
            })?;
            Ok((PeerId(r.get(0)?), key))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The earliest key swap still ahead of `now_ms` (unix milliseconds), if any: when
    /// the daemon must reconcile again.
    pub fn next_swap(&self, now_ms: i64) -> Result<Option<i64>, StoreError> {
        Ok(self.conn().query_row(
            "SELECT min(swap_after) FROM peers \
             WHERE revoked_at IS NULL AND swap_key IS NOT NULL AND swap_after > ?1",
            [now_ms],
            |r| r.get(0),
        )?)
    }

    /// The gateway's own row.
    pub fn gateway(&self) -> Result<Option<Peer>, StoreError> {
        let sql = format!(
            "SELECT {PEER_COLUMNS} FROM peers WHERE role = 'gateway' AND revoked_at IS NULL"
        );
        Ok(self.conn().query_row(&sql, [], peer_from_row).optional()?)
    }
}

pub(crate) fn peer_detail(p: &Peer) -> String {
    serde_json::json!({
        "role": p.role.as_str(),
        "address": p.address.to_string(),
        "public_key": p.public_key.to_base64(),
    })
    .to_string()
}
