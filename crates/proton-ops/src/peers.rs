//! `proton peer list|remove|rename`: the gateway's peer inventory, and the changes to
//! it that are not about clients only.

use crate::gateway::{Gateway, GatewayError};
use crate::node_cleanup::{Outcome, RETRY_HINT};
use proton_core::time::utc;
use proton_k3s::tokens::Forgotten;
use proton_store::{Allow, InvalidPeer, NodeCleanup, Peer, PeerName, PeerState, Role};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// Why a `peer` command failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error(transparent)]
    Gateway(GatewayError),
    /// A new name that is not one (bad input).
    #[error("{0}")]
    Name(InvalidPeer),
    #[error("`{old}` joined K3s as node `{old}`, and Kubernetes cannot rename a node")]
    K3sNode { old: String, new: String },
    #[error(transparent)]
    K3s(#[from] proton_k3s::Error),
    /// The cluster side of the removal failed; the key is off the tunnel already.
    #[error("`{name}` is off the tunnel, but deleting its K8s node failed{left}: {error}")]
    NodeNotDeleted {
        name: String,
        /// [`Outcome::left_note`].
        left: String,
        error: String,
    },
}

crate::gateway::from_gateway_errors!(PeerError);

impl PeerError {
    pub fn hint(&self) -> Option<String> {
        match self {
            PeerError::Gateway(e) => e.hint(),
            PeerError::K3sNode { old, new } => Some(format!(
                "keep the name, or `proton peer remove {old}` and invite the machine again as `{new}`"
            )),
            PeerError::NodeNotDeleted { name, .. } => {
                Some(format!("the cleanup of node `{name}` is {RETRY_HINT}"))
            }
            PeerError::Name(_) | PeerError::K3s(_) => None,
        }
    }

    pub fn is_bad_input(&self) -> bool {
        match self {
            PeerError::Gateway(e) => e.is_bad_input(),
            PeerError::Name(_) | PeerError::K3sNode { .. } => true,
            PeerError::K3s(_) | PeerError::NodeNotDeleted { .. } => false,
        }
    }
}

/// One live peer as `peer list` shows it. In JSON: the peer's own columns
/// (`disabled_at`/`expires_at` among them), `expired` (whether the daemon has cut it off
/// by now), `reach` (what the firewall lets it reach), its `grants` and `allow`s.
#[derive(Debug, Serialize)]
pub struct PeerRow {
    #[serde(flatten)]
    pub peer: Peer,
    pub expired: bool,
    pub reach: String,
    pub grants: Vec<&'static str>,
    pub allow: Vec<String>,
    /// The STATE column: `disabled`, `expired`, or the peer's state.
    #[serde(skip)]
    pub state: String,
}

/// A removed worker whose K8s node is not deleted yet: in JSON an entry in state
/// `removing`, with no address or key.
#[derive(Debug, Serialize)]
pub struct Removing<'a> {
    pub name: &'a PeerName,
    pub role: Role,
    pub state: &'static str,
    pub address: Option<()>,
    pub public_key: Option<()>,
    pub node_cleanup: &'a NodeCleanup,
}

/// An entry of `peer list --json`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Entry<'a> {
    Peer(&'a PeerRow),
    Removing(Removing<'a>),
}

/// `peer list`: the live peers, then the removed workers still pending cleanup.
#[derive(Debug)]
pub struct Inventory {
    pub peers: Vec<PeerRow>,
    pub removing: Vec<NodeCleanup>,
}

impl Gateway {
    /// The inventory as of `now` (unix seconds).
    pub fn inventory(&self, now: i64) -> Result<Inventory, GatewayError> {
        Ok(Inventory::new(
            self.store.list_peers(false)?,
            &self.store.grants_by_name()?,
            &self.store.allows_by_name()?,
            self.store.node_cleanups()?,
            now,
        ))
    }
}

impl Inventory {
    /// The rows for `peers` with their grants and allows (by peer name) as of `now`.
    pub fn new(
        peers: Vec<Peer>,
        grants: &BTreeMap<String, Vec<&'static str>>,
        allows: &BTreeMap<String, Vec<Allow>>,
        removing: Vec<NodeCleanup>,
        now: i64,
    ) -> Inventory {
        let peers = peers
            .into_iter()
            .map(|peer| {
                let grants = grants.get(peer.name.as_str()).cloned().unwrap_or_default();
                let allow: Vec<String> = allows
                    .get(peer.name.as_str())
                    .map(|a| a.iter().map(ToString::to_string).collect())
                    .unwrap_or_default();
                let reach = proton_k3s::firewall::reach(
                    peer.role.as_str(),
                    peer.state == PeerState::Invited,
                    grants.contains(&"admin"),
                    &allow,
                );
                let state = if peer.disabled_at.is_some() {
                    "disabled".to_string()
                } else if peer.expired(now) {
                    "expired".to_string()
                } else {
                    format!("{:?}", peer.state).to_lowercase()
                };
                PeerRow {
                    expired: peer.expired(now),
                    peer,
                    reach,
                    grants,
                    allow,
                    state,
                }
            })
            .collect();
        Inventory { peers, removing }
    }
}

impl Inventory {
    /// `peer list --json`: one array (scripts keep working), pretty-printed, keys in
    /// alphabetical order within each object.
    pub fn to_json(&self) -> serde_json::Result<String> {
        let entries: Vec<Entry> = self
            .peers
            .iter()
            .map(Entry::Peer)
            .chain(self.removing.iter().map(|c| {
                Entry::Removing(Removing {
                    name: &c.name,
                    role: Role::Worker,
                    state: "removing",
                    address: None,
                    public_key: None,
                    node_cleanup: c,
                })
            }))
            .collect();
        // Through a `Value`, whose maps are sorted: the order `peer list --json` has
        // always had, whatever the field order of the types.
        serde_json::to_string_pretty(&serde_json::to_value(entries)?)
    }
}

/// `peer list`'s table, and its footer of removed workers whose node is not deleted yet.
impl fmt::Display for Inventory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<20} {:<8} {:<16} {:<8} {:<16} {:<44} REACH",
            "NAME", "ROLE", "ADDRESS", "STATE", "EXPIRES (UTC)", "PUBLIC KEY"
        )?;
        for row in &self.peers {
            let p = &row.peer;
            let expires = p.expires_at.map(utc).unwrap_or_else(|| "-".into());
            writeln!(
                f,
                "{:<20} {:<8} {:<16} {:<8} {:<16} {:<44} {}",
                p.name,
                p.role,
                p.address,
                row.state,
                expires,
                p.public_key.to_base64(),
                row.reach
            )?;
        }
        if self.removing.is_empty() {
            return Ok(());
        }
        writeln!(f)?;
        writeln!(
            f,
            "Pending cleanup (removed workers whose K8s node is not deleted yet; `proton apply` retries):"
        )?;
        for c in &self.removing {
            let why = match &c.last_error {
                Some(e) => format!("{} failed attempt(s), last: {e}", c.attempts),
                None => "not tried yet".to_string(),
            };
            writeln!(f, "  {:<20} {why}", c.name)?;
        }
        Ok(())
    }
}

/// What `peer remove` did to the DB; its [`fmt::Display`] is the line that says so.
#[derive(Debug)]
pub enum Removal {
    /// Gone already, its node still pending: running the same command again after its
    /// cleanup failed finishes it.
    Again(String),
    /// Removed now; `node` when K3s runs here and its node is queued for deletion.
    Removed { peer: Peer, node: bool },
}

impl Removal {
    /// Whether the DB changed (the daemon is to be told).
    pub fn changed(&self) -> bool {
        matches!(self, Removal::Removed { .. })
    }

    /// The K8s node to delete next ([`Gateway::forget_removed_node`]).
    pub fn node(&self) -> Option<&str> {
        match self {
            Removal::Again(name) => Some(name),
            Removal::Removed { peer, node: true } => Some(peer.name.as_str()),
            Removal::Removed { .. } => None,
        }
    }
}

impl fmt::Display for Removal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Removal::Again(name) => {
                write!(
                    f,
                    "`{name}` is already removed; deleting its K8s node again."
                )
            }
            Removal::Removed { peer, .. } => write!(
                f,
                "Removed `{}` ({}); its address is free again.",
                peer.name, peer.address
            ),
        }
    }
}

/// An older removed worker whose node a [`Gateway::forget_removed_node`] pass could not
/// delete either; its [`fmt::Display`] is the warning. It stays pending.
#[derive(Debug, PartialEq, Eq)]
pub struct StillPending {
    pub name: String,
    /// [`Outcome::left_note`].
    pub left: String,
    pub error: String,
}

impl fmt::Display for StillPending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "warning: the K8s node of `{}` (removed earlier) is still not deleted{}: {}; it is {RETRY_HINT}",
            self.name, self.left, self.error
        )
    }
}

impl Gateway {
    /// `peer remove NAME`, the DB side. With K3s here, a worker's node is recorded as
    /// pending in the removal's own transaction, so a K3s outage (or a crash) before
    /// [`Gateway::forget_removed_node`] cannot lose the cleanup.
    pub fn remove_peer(&mut self, name: &str) -> Result<Removal, PeerError> {
        if self.store.peer_by_name(name)?.is_none() && self.store.node_cleanup_pending(name)? {
            return Ok(Removal::Again(name.to_string()));
        }
        let k3s = proton_gateway::k3s::server_version(&self.root, &self.spec).is_some();
        let peer = if k3s {
            self.store.remove_peer_queue_node_cleanup(name, "cli")?
        } else {
            self.store.remove_peer(name, "cli")?
        };
        Ok(Removal::Removed { peer, node: k3s })
    }

    /// The cluster side of removing a worker, after its key is already off the tunnel
    /// (so a failure here never leaves a revoked machine connected): its Node, its
    /// node-password secret (or a rebuilt machine could never rejoin under that name) and
    /// its bootstrap token. Older pending cleanups are retried after it. A failure for
    /// `name` itself is the error; one for an older record is returned (it stays pending).
    pub fn forget_removed_node(
        &mut self,
        name: &str,
        deleted: &mut dyn FnMut(&str, &Forgotten),
    ) -> Result<Option<StillPending>, PeerError> {
        let out: Outcome = self.run_pending_cleanups(Some(name), false, deleted)?;
        let left = out.left_note();
        match out.failed {
            Some((failed, error)) if failed == name => Err(PeerError::NodeNotDeleted {
                name: failed,
                left,
                error,
            }),
            Some((name, error)) => Ok(Some(StillPending { name, left, error })),
            None => Ok(None),
        }
    }

    /// `peer rename OLD NEW`. A worker that got K3s join data is a Node named after the
    /// peer, and K8s cannot rename a Node: renaming only here would make `peer remove`
    /// forget the wrong node later, so that is refused.
    pub fn rename_peer(&mut self, old: &str, new: &str) -> Result<Peer, PeerError> {
        let new: PeerName = new.parse().map_err(PeerError::Name)?;
        let worker = self
            .store
            .peer_by_name(old)?
            .is_some_and(|p| p.role == Role::Worker);
        if worker && proton_k3s::tokens::recorded_token_id(&self.root, old)?.is_some() {
            return Err(PeerError::K3sNode {
                old: old.to_string(),
                new: new.to_string(),
            });
        }
        Ok(self.store.rename_peer(old, &new, "cli")?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proton_core::keys::PublicKey;
    use proton_store::PeerId;

    fn peer(id: i64, name: &str, role: Role, state: PeerState) -> Peer {
        Peer {
            id: PeerId(id),
            name: name.parse().unwrap(),
            role,
            public_key: PublicKey::from_base64("0mK6h3m4M5m6o7p8q9r0s1t2u3v4w5x6y7z8A9B0C1E=")
                .unwrap(),
            address: std::net::Ipv4Addr::new(10, 7, 7, id as u8),
            state,
            created_at: 1_700_000_000,
            revoked_at: None,
            disabled_at: None,
            expires_at: None,
        }
    }

    /// A gateway, an admin client that expired, a client allowed one port of a worker,
    /// and a removed worker whose node is not deleted yet.
    fn sample() -> Inventory {
        let mut phone = peer(3, "phone", Role::Client, PeerState::Active);
        phone.expires_at = Some(1_800_000_000);
        let tab = peer(4, "tab", Role::Client, PeerState::Active);
        let grants = BTreeMap::from([("phone".to_string(), vec!["admin"])]);
        let allows = BTreeMap::from([("tab".to_string(), vec!["w1:80".parse().unwrap()])]);
        let removing = vec![NodeCleanup {
            name: "w2".parse().unwrap(),
            since: 1_700_000_100,
            attempts: 2,
            last_error: Some("connection refused".into()),
        }];
        Inventory::new(
            vec![peer(1, "gw", Role::Gateway, PeerState::Active), phone, tab],
            &grants,
            &allows,
            removing,
            1_900_000_000,
        )
    }

    #[test]
    fn the_json_is_one_array_of_peers_with_their_reach_then_the_removing_workers() {
        let json: serde_json::Value = serde_json::from_str(&sample().to_json().unwrap()).unwrap();
        let key = "0mK6h3m4M5m6o7p8q9r0s1t2u3v4w5x6y7z8A9B0C1E=";
        assert_eq!(
            json,
            serde_json::json!([
                {"id": 1, "name": "gw", "role": "gateway", "public_key": key,
                 "address": "10.7.7.1", "state": "active", "created_at": 1_700_000_000,
                 "revoked_at": null, "disabled_at": null, "expires_at": null,
                 "expired": false, "reach": "-", "grants": [], "allow": []},
                {"id": 3, "name": "phone", "role": "client", "public_key": key,
                 "address": "10.7.7.3", "state": "active", "created_at": 1_700_000_000,
                 "revoked_at": null, "disabled_at": null, "expires_at": 1_800_000_000,
                 "expired": true, "reach": "everything (--admin)", "grants": ["admin"],
                 "allow": []},
                {"id": 4, "name": "tab", "role": "client", "public_key": key,
                 "address": "10.7.7.4", "state": "active", "created_at": 1_700_000_000,
                 "revoked_at": null, "disabled_at": null, "expires_at": null,
                 "expired": false,
                 "reach": "gateway DNS, 80/443, internet + w1:80/tcp",
                 "grants": [], "allow": ["w1:80/tcp"]},
                {"name": "w2", "role": "worker", "state": "removing", "address": null,
                 "public_key": null,
                 "node_cleanup": {"name": "w2", "since": 1_700_000_100, "attempts": 2,
                                  "last_error": "connection refused"}},
            ])
        );
        // Keys sorted within each object, as `peer list --json` has always printed them.
        let text = sample().to_json().unwrap();
        assert!(
            text.starts_with("[\n  {\n    \"address\": \"10.7.7.1\",\n    \"allow\": [],"),
            "{text}"
        );
    }

    #[test]
    fn the_table_has_one_line_a_peer_and_a_footer_for_pending_cleanups() {
        let text = sample().to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "NAME                 ROLE     ADDRESS          STATE    EXPIRES (UTC)    PUBLIC KEY                                   REACH"
        );
        assert_eq!(
            lines[2],
            "phone                client   10.7.7.3         expired  2027-01-15 08:00 0mK6h3m4M5m6o7p8q9r0s1t2u3v4w5x6y7z8A9B0C1E= everything (--admin)"
        );
        assert_eq!(
            &lines[4..],
            [
                "",
                "Pending cleanup (removed workers whose K8s node is not deleted yet; `proton apply` retries):",
                "  w2                   2 failed attempt(s), last: connection refused",
            ]
        );
        let empty = Inventory::new(
            Vec::new(),
            &BTreeMap::new(),
            &BTreeMap::new(),
            Vec::new(),
            0,
        );
        assert_eq!(empty.to_string().lines().count(), 1, "the header alone");
    }
}
