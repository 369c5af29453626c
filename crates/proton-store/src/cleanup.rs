//! Removed workers whose Kubernetes side (Node, node-password secret, bootstrap token)
//! is still to be deleted.
//!
//! Removing a worker takes it off the tunnel at once, but deleting its Node needs the
//! K3s API, which may be down. The row is written in the removal's own transaction and
//! deleted only once the cluster side is gone, so a failed cleanup is retried (by the
//! next `peer remove` or `apply`) instead of being lost with the peer row. While a name
//! is listed, no new peer may take it: a later retry would otherwise delete the Node of
//! the machine that joined under that name.

use crate::audit::record;
use crate::peer::PeerName;
use crate::{Store, StoreError};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

/// One removed worker whose K8s node is still to be deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeCleanup {
    /// The removed peer's name, which is also its K8s node name.
    pub name: PeerName,
    /// When the peer was removed (unix seconds).
    pub since: i64,
    /// How many cleanup attempts failed so far.
    pub attempts: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// Records that `name`'s node is to be deleted; inside the removal's transaction. An
/// older pending record for the same name is kept as it is (it is the same node).
pub(crate) fn queue(tx: &Transaction<'_>, name: &str, now: i64) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO node_cleanup (name, since) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
        params![name, now],
    )?;
    Ok(())
}

/// Refuses to give `name` to a new (or renamed) peer while its old node is pending.
pub(crate) fn refuse_pending(conn: &Connection, name: &str) -> Result<(), StoreError> {
    let pending = conn
        .query_row("SELECT 1 FROM node_cleanup WHERE name = ?1", [name], |_| {
            Ok(())
        })
        .optional()?;
    match pending {
        Some(()) => Err(StoreError::NodeCleanupPending(name.to_string())),
        None => Ok(()),
    }
}

impl Store {
    /// Every pending node cleanup, oldest first.
    pub fn node_cleanups(&self) -> Result<Vec<NodeCleanup>, StoreError> {
        let mut stmt = self.conn().prepare(
            "SELECT name, since, attempts, last_error FROM node_cleanup ORDER BY since, name",
        )?;
        let rows = stmt.query_map([], |r| {
            let name: String = r.get(0)?;
            Ok(NodeCleanup {
                name: name.parse().map_err(|e: crate::InvalidPeer| {
                    rusqlite::Error::FromSqlConversionFailure(
                        0,
                        rusqlite::types::Type::Text,
                        e.to_string().into(),
                    )
                })?,
                since: r.get(1)?,
                attempts: r.get(2)?,
                last_error: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Whether `name`'s node is still to be deleted.
    pub fn node_cleanup_pending(&self, name: &str) -> Result<bool, StoreError> {
        match refuse_pending(self.conn(), name) {
            Ok(()) => Ok(false),
            Err(StoreError::NodeCleanupPending(_)) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Notes a failed attempt (kept for `peer list`). Not audited and no generation
    /// bump: nothing the daemon serves changed.
    pub fn node_cleanup_failed(&mut self, name: &str, error: &str) -> Result<(), StoreError> {
        self.write(|tx, _, _| {
            tx.execute(
                "UPDATE node_cleanup SET attempts = attempts + 1, last_error = ?2 WHERE name = ?1",
                params![name, error],
            )?;
            Ok(())
        })
    }

    /// The node is gone from the cluster: drops the record (the name is free again).
    /// Returns whether there was one.
    pub fn node_cleanup_done(&mut self, name: &str, actor: &str) -> Result<bool, StoreError> {
        self.write(|tx, _, now| {
            let n = tx.execute("DELETE FROM node_cleanup WHERE name = ?1", [name])?;
            if n == 1 {
                record(tx, now, actor, "node.cleanup", name, "{}")?;
            }
            Ok(n == 1)
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::{Role, Store, StoreError};
    use proton_core::host::Root;
    use proton_core::keys::PrivateKey;

    fn store(dir: &std::path::Path) -> Store {
        let key = PrivateKey::generate().public_key();
        let cidr = "10.7.7.0/24".parse().unwrap();
        Store::create(&Root::new(dir), &cidr, "proton", key)
            .unwrap()
            .0
    }

    fn invite(s: &mut Store, name: &str, secret: &str) -> Result<(), StoreError> {
        let key = PrivateKey::generate().public_key();
        s.reserve_invitation(&name.parse().unwrap(), Role::Worker, key, secret, 99, "t")
            .map(|_| ())
    }

    #[test]
    fn a_removed_worker_keeps_its_name_reserved_until_its_node_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(dir.path());
        invite(&mut s, "w1", "h1").unwrap();
        s.add_peer(
            &"phone".parse().unwrap(),
            Role::Client,
            PrivateKey::generate().public_key(),
            "t",
        )
        .unwrap();
        s.remove_peer_queue_node_cleanup("w1", "t").unwrap();
        // A client has no node: nothing to clean up.
        s.remove_peer_queue_node_cleanup("phone", "t").unwrap();
        let pending = s.node_cleanups().unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!((pending[0].name.as_str(), pending[0].attempts), ("w1", 0));
        assert!(s.node_cleanup_pending("w1").unwrap());

        // Neither an invitation nor a rename may reuse the name meanwhile.
        assert!(matches!(
            invite(&mut s, "w1", "h2"),
            Err(StoreError::NodeCleanupPending(n)) if n == "w1"
        ));
        invite(&mut s, "w2", "h3").unwrap();
        assert!(matches!(
            s.rename_peer("w2", &"w1".parse().unwrap(), "t"),
            Err(StoreError::NodeCleanupPending(_))
        ));

        s.node_cleanup_failed("w1", "connection refused").unwrap();
        let p = &s.node_cleanups().unwrap()[0];
        assert_eq!(
            (p.attempts, p.last_error.as_deref()),
            (1, Some("connection refused"))
        );

        assert!(s.node_cleanup_done("w1", "t").unwrap());
        assert!(!s.node_cleanup_done("w1", "t").unwrap());
        assert!(s.node_cleanups().unwrap().is_empty());
        invite(&mut s, "w1", "h4").unwrap();
    }

    #[test]
    fn plain_remove_queues_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(dir.path());
        invite(&mut s, "w1", "h1").unwrap();
        s.remove_peer("w1", "t").unwrap();
        assert!(s.node_cleanups().unwrap().is_empty());
        invite(&mut s, "w1", "h2").unwrap();
    }
}
