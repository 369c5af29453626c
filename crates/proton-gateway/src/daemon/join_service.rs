//! The join API's service: who is calling (`whoami`) and the redeem, which commits the
//! peer with the time its throw-away key gives way to its own (the reconcile loop in
//! [`super`] applies that swap; nothing here touches the device).

use super::{Gateway, SWAP_AFTER, now, now_ms, read_key};
use crate::server::{JoinRefusal, JoinService, Redeemed};
use proton_core::invite::hash_secret_text;
use proton_core::keys::PublicKey;
use proton_proto::join::{K3sJoin, RedeemRequest, RedeemResponse, WhoAmI};
use proton_store::{Peer, PeerState, RedeemError};
use std::net::Ipv4Addr;
use std::sync::Arc;

pub(super) struct Join(pub(super) Arc<Gateway>);

impl JoinService for Join {
    fn whoami(&self, caller: Ipv4Addr) -> Result<WhoAmI, JoinRefusal> {
        let store = self
            .0
            .store()
            .map_err(|e| JoinRefusal::Internal(e.to_string()))?;
        let peer = store
            .peer_by_address(caller)
            .map_err(|e| JoinRefusal::Internal(e.to_string()))?
            .ok_or(JoinRefusal::UnknownCaller(caller))?;
        Ok(WhoAmI {
            name: peer.name.to_string(),
            role: peer.role.to_string(),
            address: self.0.spec.network.cidr.with_host(peer.address).to_string(),
            public_key: peer.public_key.to_base64(),
        })
    }

    fn redeem(&self, caller: Ipv4Addr, req: RedeemRequest) -> Result<Redeemed, JoinRefusal> {
        let outcome = self.redeem_inner(caller, req);
        match &outcome {
            Ok(r) if r.repeat => {}
            Ok(_) => self.0.observer.join_succeeded(),
            Err(_) => self.0.observer.join_failed(),
        }
        outcome
    }
}

impl Join {
    fn redeem_inner(&self, caller: Ipv4Addr, req: RedeemRequest) -> Result<Redeemed, JoinRefusal> {
        let key = PublicKey::from_base64(&req.public_key)
            .map_err(|e| JoinRefusal::BadRequest(format!("public_key: {e}")))?;
        let mut store = self
            .0
            .store()
            .map_err(|e| JoinRefusal::Internal(e.to_string()))?;
        let hash = hash_secret_text(&req.secret);
        let invitee = match store.peer_by_address(caller) {
            Ok(Some(p)) if p.state == PeerState::Invited => p,
            // The answer to a redeem can be lost: the key swap (ours, or a reconcile woken
            // by another peer) may overtake it. The invitee then asks again through the
            // key it registered and gets the same answer (with a fresh K3s token: the first
            // was lost with it); nothing else changes. Only the holder of that key can send
            // from this address, and only the invitee knows the secret.
            Ok(Some(p)) if p.state == PeerState::Active && p.public_key == key => {
                let inv = store
                    .invitation_by_hash(&hash)
                    .map_err(|e| JoinRefusal::Internal(e.to_string()))?;
                if !inv.is_some_and(|i| i.peer_id == p.id && i.redeemed_at.is_some()) {
                    return Err(JoinRefusal::WrongSecret);
                }
                // One live bootstrap token per join: the lost answer's token goes once
                // its replacement is recorded (it would otherwise live out its TTL).
                let k3s = if p.role == proton_store::Role::Worker {
                    crate::k3s::mint(&self.0.root, &self.0.current(), p.name.as_str())
                        .map_err(|e| JoinRefusal::Internal(e.to_string()))?
                        .map(|m| {
                            crate::k3s::replace(&self.0.root, p.name.as_str(), &m.token);
                            m.join
                        })
                } else {
                    None
                };
                return Ok(Redeemed {
                    response: self.answer(&p, k3s)?,
                    repeat: true,
                });
            }
            Ok(_) => return Err(JoinRefusal::UnknownCaller(caller)),
            Err(e) => return Err(JoinRefusal::Internal(e.to_string())),
        };
        // A worker of a gateway running K3s gets a bootstrap token. It is minted only for
        // a pending, unexpired invitation of this very caller, and before the invitation
        // is consumed: if minting fails, the worker can retry with the same invitation.
        let valid = store
            .invitation_by_hash(&hash)
            .ok()
            .flatten()
            .is_some_and(|i| {
                i.peer_id == invitee.id && i.redeemed_at.is_none() && i.expires_at > now()
            });
        let minted = if valid && invitee.role == proton_store::Role::Worker {
            crate::k3s::mint(&self.0.root, &self.0.current(), invitee.name.as_str())
                .map_err(|e| JoinRefusal::Internal(e.to_string()))?
        } else {
            None
        };
        let at = now_ms();
        let swap_after = at + SWAP_AFTER.as_millis() as i64;
        let redeemed = store
            .redeem_invitation_swapping_after(
                &hash,
                Some(caller),
                key,
                at / 1000,
                Some(swap_after),
                "join-api",
            )
            .map_err(redeem_refusal);
        let peer = match redeemed {
            Ok(peer) => peer,
            Err(e) => {
                if let Some(m) = &minted {
                    crate::k3s::discard(&self.0.root, &m.token);
                }
                return Err(e);
            }
        };
        let k3s = minted.map(|m| {
            crate::k3s::remember(&self.0.root, peer.name.as_str(), &m.token);
            m.join
        });
        // The DB holds the swap; the loop learns its time from the reconcile this wakes.
        self.0.wake.notify_one();
        Ok(Redeemed {
            response: self.answer(&peer, k3s)?,
            repeat: false,
        })
    }

    /// What a redeemed peer is told: its address, the network, the gateway's key and,
    /// for a worker of a gateway running K3s, how to join the cluster.
    fn answer(&self, peer: &Peer, k3s: Option<K3sJoin>) -> Result<RedeemResponse, JoinRefusal> {
        let spec = &*self.0.current();
        let net = proton_core::view::Network::new(spec);
        let gateway_key = read_key(&self.0.root)
            .map_err(|e| JoinRefusal::Internal(e.to_string()))?
            .public_key();
        Ok(RedeemResponse {
            name: peer.name.to_string(),
            role: peer.role.to_string(),
            address: net.peer_address(peer.address).to_string(),
            network: spec.network.cidr.to_string(),
            gateway_public_key: gateway_key.to_base64(),
            // On the wire `0` is none.
            persistent_keepalive: net.keepalive().unwrap_or(0),
            mtu: spec.network.mtu,
            k3s,
        })
    }
}

/// What the join API answers to a failed redeem. A key that belongs to another peer is the
/// caller's mistake (409), and the answer does not name that peer.
pub(super) fn redeem_refusal(e: RedeemError) -> JoinRefusal {
    match e {
        RedeemError::Unknown | RedeemError::WrongAddress => JoinRefusal::WrongSecret,
        RedeemError::AlreadyUsed => JoinRefusal::AlreadyUsed,
        RedeemError::Expired => JoinRefusal::Expired,
        RedeemError::Store(proton_store::StoreError::KeyTaken(_)) => JoinRefusal::KeyInUse,
        RedeemError::Store(e) => JoinRefusal::Internal(e.to_string()),
    }
}
