//! Each peer's last endpoint (the public address its packets came from), so a
//! restarted gateway can send to a peer at once instead of waiting for the peer to
//! handshake again (a userspace restart otherwise forgets every endpoint).
//!
//! Written by the daemon as the device learns endpoints; not a change of desired state:
//! no audit row and no generation bump (that would wake every reconcile).

use crate::{Store, StoreError};
use proton_core::keys::PublicKey;
use rusqlite::params;
use std::collections::HashMap;
use std::net::SocketAddr;

impl Store {
    /// Records the endpoints in one transaction; a key that is not a live peer is
    /// skipped. Returns how many rows changed.
    pub fn save_endpoints(
        &mut self,
        endpoints: &[(PublicKey, SocketAddr)],
    ) -> Result<usize, StoreError> {
        if endpoints.is_empty() {
            return Ok(0);
        }
        self.write(|tx, _, _| {
            let mut stmt = tx.prepare_cached(
                "UPDATE peers SET last_endpoint = ?1 WHERE public_key = ?2 AND revoked_at IS NULL",
            )?;
            let mut changed = 0;
            for (key, at) in endpoints {
                changed += stmt.execute(params![at.to_string(), key.to_base64()])?;
            }
            Ok(changed)
        })
    }

    /// The last endpoint of every live peer that has one, by public key.
    pub fn last_endpoints(&self) -> Result<HashMap<PublicKey, SocketAddr>, StoreError> {
        let mut stmt = self.conn().prepare(
            "SELECT public_key, last_endpoint FROM peers WHERE revoked_at IS NULL AND last_endpoint IS NOT NULL",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = HashMap::new();
        for row in rows {
            let (key, at) = row?;
            // A row this code cannot read is skipped: the endpoint is only a hint.
            if let (Ok(key), Ok(at)) = (PublicKey::from_base64(&key), at.parse()) {
                out.insert(key, at);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Role, Store};
    use proton_core::host::Root;
    use proton_core::keys::PrivateKey;

    #[test]
    fn endpoints_survive_a_reopen_without_waking_the_daemon() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let cidr = "10.7.7.0/24".parse().unwrap();
        let (mut s, _) =
            Store::create(&root, &cidr, "proton", PrivateKey::generate().public_key()).unwrap();
        let key = PrivateKey::generate().public_key();
        s.add_peer(&"w1".parse().unwrap(), Role::Worker, key, "cli")
            .unwrap();
        let stranger = PrivateKey::generate().public_key();
        let generation = s.generation().unwrap();
        let at = "198.51.100.7:41234".parse().unwrap();
        assert_eq!(s.save_endpoints(&[(key, at), (stranger, at)]).unwrap(), 1);
        assert_eq!(
            s.generation().unwrap(),
            generation,
            "not a change of desired state"
        );
        drop(s);
        let mut s = Store::open_existing(&root, &cidr).unwrap();
        let book = s.last_endpoints().unwrap();
        assert_eq!(book.len(), 1);
        assert_eq!(book[&key], at);
        // A removed peer's endpoint is not handed to whoever holds its key next.
        s.remove_peer("w1", "cli").unwrap();
        assert!(s.last_endpoints().unwrap().is_empty());
    }
}
