//! Versioned migrations, kept in SQLite's `user_version`. Each version is a named
//! constant applied once, in its own transaction; a DB newer than this code is refused.

use crate::StoreError;
use rusqlite::Connection;

/// Version 1: peers, invitations, the audit log and a change counter.
const V1_INITIAL: &str = "
CREATE TABLE peers (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('gateway', 'worker', 'client')),
    public_key  TEXT NOT NULL,
    address     TEXT NOT NULL,
    -- 'invited': holds an invitation's throw-away key, may only reach the join API;
    -- 'active': a joined peer.
    state       TEXT NOT NULL CHECK (state IN ('invited', 'active')),
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
-- Names, keys and addresses are unique among peers that are not revoked, so a
-- removed peer's address and name can be used again.
CREATE UNIQUE INDEX peers_live_name ON peers(name) WHERE revoked_at IS NULL;
CREATE UNIQUE INDEX peers_live_key ON peers(public_key) WHERE revoked_at IS NULL;
CREATE UNIQUE INDEX peers_live_address ON peers(address) WHERE revoked_at IS NULL;

CREATE TABLE invitations (
    id           INTEGER PRIMARY KEY,
    secret_hash  TEXT NOT NULL UNIQUE,
    peer_id      INTEGER NOT NULL REFERENCES peers(id),
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    redeemed_at  INTEGER
);

CREATE TABLE audit (
    id       INTEGER PRIMARY KEY,
    at       INTEGER NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    subject  TEXT NOT NULL,
    detail   TEXT NOT NULL
);

CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO meta (key, value) VALUES ('generation', 0);
";

/// Version 2: an invitation records the role it was issued for (so it stays readable
/// after its peer row is revoked), and lookups by peer are indexed.
const V2_INVITATION_ROLE: &str = "
ALTER TABLE invitations ADD COLUMN role TEXT NOT NULL DEFAULT 'worker'
    CHECK (role IN ('worker', 'client'));
UPDATE invitations SET role = (SELECT role FROM peers WHERE peers.id = invitations.peer_id)
    WHERE (SELECT role FROM peers WHERE peers.id = invitations.peer_id) IN ('worker', 'client');
CREATE INDEX invitations_peer ON invitations(peer_id);
";

/// Version 3: removed workers whose Kubernetes Node (and node-password secret, and
/// bootstrap token) are still to be deleted. Written in the same transaction as the
/// removal, deleted only once the cluster side is gone, so a failed cleanup is retried
/// instead of forgotten. A name listed here cannot be given to a new peer.
const V3_NODE_CLEANUP: &str = "
CREATE TABLE node_cleanup (
    name        TEXT PRIMARY KEY,
    since       INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT
);
";

/// Version 4: each peer's last endpoint (`ip:port` as the device saw it), so a restarted
/// gateway can reach its peers at once. A hint, written by the daemon; NULL when unknown.
const V4_LAST_ENDPOINT: &str = "
ALTER TABLE peers ADD COLUMN last_endpoint TEXT;
";

/// Version 5: clients as people manage them. A disabled peer keeps its row, key and
/// address but is kept off the device (`disabled_at`, NULL = enabled); a peer with an
/// `expires_at` (unix seconds) is cut off by the daemon once that time has passed.
const V5_PEER_DISABLE_EXPIRE: &str = "
ALTER TABLE peers ADD COLUMN disabled_at INTEGER;
ALTER TABLE peers ADD COLUMN expires_at INTEGER;
";

/// Version 6: reach grants beyond a role's default (`client add --admin`), enforced by
/// the gateway's nftables table. A grant row goes with its peer: revoked peers' grants
/// are ignored (the join reads only live peers).
const V6_GRANTS: &str = "
CREATE TABLE grants (
    peer_id  INTEGER NOT NULL REFERENCES peers(id),
    kind     TEXT NOT NULL CHECK (kind IN ('admin')),
    PRIMARY KEY (peer_id, kind)
);
";

/// Version 7: the redeem's key swap as state. A redeem makes the peer active with its own
/// key at once, but the device keeps the throw-away key (`swap_key`) until `swap_after`
/// (unix milliseconds), so the redeem's answer still leaves through the session it came
/// in on. The daemon's reconcile is the only writer to the device and applies the swap
/// once the time has passed; rows whose time has passed are inert.
const V7_KEY_SWAP: &str = "
ALTER TABLE peers ADD COLUMN swap_key TEXT;
ALTER TABLE peers ADD COLUMN swap_after INTEGER;
";

/// Version 8: named grants (`client add --allow w1:8080`): a client may open connections
/// to one port of one peer. The target is a peer row, so a renamed target keeps its
/// grants and a removed one takes them with it (only live peers on both ends count).
const V8_ALLOWS: &str = "
CREATE TABLE allows (
    peer_id    INTEGER NOT NULL REFERENCES peers(id),
    target_id  INTEGER NOT NULL REFERENCES peers(id),
    proto      TEXT NOT NULL CHECK (proto IN ('tcp', 'udp')),
    port       INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    PRIMARY KEY (peer_id, target_id, proto, port)
);
";

/// Every migration in order; the DB's `user_version` is how many have run.
pub(crate) const MIGRATIONS: &[&str] = &[
    V1_INITIAL,
    V2_INVITATION_ROLE,
    V3_NODE_CLEANUP,
    V4_LAST_ENDPOINT,
    V5_PEER_DISABLE_EXPIRE,
    V6_GRANTS,
    V7_KEY_SWAP,
    V8_ALLOWS,
];

pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let known = MIGRATIONS.len() as i64;
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > known {
        return Err(StoreError::SchemaTooNew {
            path: Default::default(),
            found,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Another process may have migrated while we waited for the lock.
        let now: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if now > i as i64 {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}
