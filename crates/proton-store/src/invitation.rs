//! The `invitations` table. Only the hash of an invitation's secret is stored; the
//! invitation reserves a peer (address + throw-away key) until it is redeemed, expires
//! or is swept.

use crate::audit::record;
use crate::peer::{
    PEER_COLUMNS, PeerName, PeerState, Role, insert_peer, live_by, peer_detail, peer_from_row,
};
use crate::{Peer, PeerId, Store, StoreError};
use proton_core::keys::PublicKey;
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use std::fmt;
use std::net::Ipv4Addr;

/// An invitation's row id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct InvitationId(pub i64);

impl fmt::Display for InvitationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// One row of `invitations` (the secret's hash is the lookup key, not a field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invitation {
    pub id: InvitationId,
    /// The peer (in [`crate::PeerState::Invited`] until redeemed) it reserves.
    pub peer_id: PeerId,
    pub role: Role,
    pub created_at: i64,
    pub expires_at: i64,
    pub redeemed_at: Option<i64>,
}

/// Why a redeem was refused. None of them changes anything.
#[derive(Debug, thiserror::Error)]
pub enum RedeemError {
    #[error("unknown invitation (it was never issued by this gateway, or was removed)")]
    Unknown,
    #[error("this invitation has already been used")]
    AlreadyUsed,
    #[error("this invitation has expired: ask for a new one (`proton invite`)")]
    Expired,
    #[error("this invitation belongs to another address than the one it was used from")]
    WrongAddress,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for RedeemError {
    fn from(e: rusqlite::Error) -> Self {
        RedeemError::Store(e.into())
    }
}

const INVITATION_COLUMNS: &str = "id, peer_id, role, created_at, expires_at, redeemed_at";

fn invitation_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Invitation> {
    let role: String = r.get(2)?;
    Ok(Invitation {
        id: InvitationId(r.get(0)?),
        peer_id: PeerId(r.get(1)?),
        role: role.parse().map_err(|e: crate::InvalidPeer| {
            rusqlite::Error::FromSqlConversionFailure(
                2,
                rusqlite::types::Type::Text,
                e.to_string().into(),
            )
        })?,
        created_at: r.get(3)?,
        expires_at: r.get(4)?,
        redeemed_at: r.get(5)?,
    })
}

impl Store {
    /// Reserves an address and a peer holding the invitee's throw-away key, and records
    /// the invitation (by the hash of its secret). One transaction.
    pub fn reserve_invitation(
        &mut self,
        name: &PeerName,
        role: Role,
        throwaway: PublicKey,
        secret_hash: &str,
        expires_at: i64,
        actor: &str,
    ) -> Result<(Peer, Invitation), StoreError> {
        if role == Role::Gateway {
            return Err(StoreError::Invalid("a gateway cannot be invited".into()));
        }
        self.write(|tx, cidr, now| {
            let peer = insert_peer(
                tx,
                cidr,
                name,
                role,
                throwaway,
                PeerState::Invited,
                None,
                now,
            )?;
            let created_at = now;
            let inserted = tx.execute(
                "INSERT INTO invitations (secret_hash, peer_id, role, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (secret_hash) DO NOTHING",
                params![
                    secret_hash,
                    peer.id.0,
                    role.as_str(),
                    created_at,
                    expires_at
                ],
            )?;
            if inserted != 1 {
                return Err(StoreError::SecretReused);
            }
            let inv = Invitation {
                id: InvitationId(tx.last_insert_rowid()),
                peer_id: peer.id,
                role,
                created_at,
                expires_at,
                redeemed_at: None,
            };
            let detail = serde_json::json!({
                "role": role.as_str(),
                "address": peer.address.to_string(),
                "expires_at": expires_at,
            })
            .to_string();
            record(tx, now, actor, "invitation.create", name.as_str(), &detail)?;
            Ok((peer, inv))
        })
    }

    /// Redeems an invitation exactly once: swaps the reserved peer's throw-away key for
    /// `new_key` and makes it active. With `caller`, the invitation must belong to that
    /// tunnel address. Refusals change nothing.
    pub fn redeem_invitation(
        &mut self,
        secret_hash: &str,
        caller: Option<Ipv4Addr>,
        new_key: PublicKey,
        at: i64,
        actor: &str,
    ) -> Result<Peer, RedeemError> {
        self.redeem_invitation_swapping_after(secret_hash, caller, new_key, at, None, actor)
    }

    /// [`Store::redeem_invitation`], with the device keeping the throw-away key until
    /// `swap_after` (unix milliseconds; see [`Store::held_keys`]); `None`: at once.
    pub fn redeem_invitation_swapping_after(
        &mut self,
        secret_hash: &str,
        caller: Option<Ipv4Addr>,
        new_key: PublicKey,
        at: i64,
        swap_after: Option<i64>,
        actor: &str,
    ) -> Result<Peer, RedeemError> {
        self.write(|tx, _, now| {
            let inv = tx
                .query_row(
                    &format!("SELECT {INVITATION_COLUMNS} FROM invitations WHERE secret_hash = ?1"),
                    [secret_hash],
                    invitation_from_row,
                )
                .optional()?
                .ok_or(RedeemError::Unknown)?;
            let peer = tx
                .query_row(
                    &format!("SELECT {PEER_COLUMNS} FROM peers WHERE id = ?1"),
                    [inv.peer_id.0],
                    peer_from_row,
                )
                .optional()?
                .ok_or(RedeemError::Unknown)?;
            if inv.redeemed_at.is_some() {
                return Err(RedeemError::AlreadyUsed);
            }
            if inv.expires_at <= at || peer.revoked_at.is_some() {
                return Err(RedeemError::Expired);
            }
            if caller.is_some_and(|c| c != peer.address) {
                return Err(RedeemError::WrongAddress);
            }
            if let Some(other) = live_by(tx, "public_key", &new_key.to_base64())?
                && other.id != peer.id
            {
                return Err(StoreError::KeyTaken(other.name.to_string()).into());
            }
            // The conditional update is what makes a redeem work once under races.
            let changed = tx.execute(
                "UPDATE invitations SET redeemed_at = ?1 WHERE id = ?2 AND redeemed_at IS NULL AND expires_at > ?1",
                params![at, inv.id.0],
            )?;
            if changed != 1 {
                return Err(RedeemError::AlreadyUsed);
            }
            tx.execute(
                "UPDATE peers SET public_key = ?1, state = 'active', swap_key = ?2, swap_after = ?3 \
                 WHERE id = ?4",
                params![
                    new_key.to_base64(),
                    swap_after.map(|_| peer.public_key.to_base64()),
                    swap_after,
                    peer.id.0
                ],
            )?;
            let peer = Peer {
                public_key: new_key,
                state: PeerState::Active,
                ..peer
            };
            record(
                tx,
                now,
                actor,
                "invitation.redeem",
                peer.name.as_str(),
                &peer_detail(&peer),
            )?;
            Ok(peer)
        })
    }

    pub fn invitation_by_hash(&self, secret_hash: &str) -> Result<Option<Invitation>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {INVITATION_COLUMNS} FROM invitations WHERE secret_hash = ?1"),
                [secret_hash],
                invitation_from_row,
            )
            .optional()?)
    }

    /// The pending (unredeemed) invitation reserving `peer_id`, if any.
    pub fn pending_invitation_for(
        &self,
        peer_id: PeerId,
    ) -> Result<Option<Invitation>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {INVITATION_COLUMNS} FROM invitations WHERE peer_id = ?1 AND redeemed_at IS NULL"),
                [peer_id.0],
                invitation_from_row,
            )
            .optional()?)
    }

    /// Revokes the peers of invitations that expired unredeemed, freeing their addresses;
    /// returns them so the caller removes their throw-away keys from the live device.
    /// Also forgets the throw-away keys of redeems whose swap time has passed (the device
    /// carries the peer's own key by then; the rows were inert), without an audit row or
    /// a generation bump: nothing the device should do changes.
    pub fn sweep_expired(&mut self, at: i64, actor: &str) -> Result<Vec<Peer>, StoreError> {
        self.write(|tx, _, now| {
            tx.execute(
                "UPDATE peers SET swap_key = NULL, swap_after = NULL \
                 WHERE swap_key IS NOT NULL AND swap_after <= ?1",
                [at.saturating_mul(1000)],
            )?;
            let sql = format!(
                "SELECT {} FROM peers p JOIN invitations i ON i.peer_id = p.id \
                 WHERE i.redeemed_at IS NULL AND i.expires_at <= ?1 AND p.revoked_at IS NULL",
                PEER_COLUMNS
                    .split(", ")
                    .map(|c| format!("p.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let expired: Vec<Peer> = {
                let mut stmt = tx.prepare(&sql)?;
                let rows = stmt.query_map([at], peer_from_row)?;
                rows.collect::<Result<_, _>>()?
            };
            for p in &expired {
                tx.execute(
                    "UPDATE peers SET revoked_at = ?1 WHERE id = ?2",
                    params![at, p.id.0],
                )?;
                record(
                    tx,
                    now,
                    actor,
                    "invitation.expire",
                    p.name.as_str(),
                    &peer_detail(p),
                )?;
            }
            Ok(expired)
        })
    }
}
