//! Proton's state: one SQLite file (`/var/lib/proton/proton.db`, mode `0600`) holding
//! the peers, the invitations and an audit log of every change.
//!
//! - Schema versions live in SQLite's `user_version`; each migration is a named
//!   constant applied in its own transaction ([`schema`]).
//! - Every change is one `BEGIN IMMEDIATE` transaction that also writes its audit row,
//!   so concurrent writers (the CLI and the daemon, or 50 joins at once) serialize, and
//!   address allocation is race-free.
//! - Invitation secrets are stored hashed; redeeming is a conditional `UPDATE` that
//!   succeeds exactly once.
//!
//! ```no_run
//! use proton_core::host::Root;
//! use proton_store::{Role, Store};
//! let cidr = "10.7.7.0/24".parse().unwrap();
//! let mut store = Store::open(&Root::new("/"), &cidr).unwrap();
//! let key = proton_core::keys::PrivateKey::generate().public_key();
//! let peer = store.add_peer(&"laptop".parse().unwrap(), Role::Client, key, "cli").unwrap();
//! println!("{} got {}", peer.name, peer.address);
//! ```
#![deny(unsafe_code)]

mod audit;
mod error;
mod invitation;
mod peer;
mod schema;

pub use audit::AuditEvent;
pub use error::StoreError;
pub use invitation::{Invitation, RedeemError};
pub use peer::{Peer, PeerName, PeerState, Role};

use proton_core::host::Root;
use proton_core::net::Cidr;
use rusqlite::{Connection, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Host path of the state database.
pub const DB_PATH: &str = "/var/lib/proton/proton.db";

/// How long a writer waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// A handle on the state database. One per thread; open as many as you like.
pub struct Store {
    conn: Connection,
    cidr: Cidr,
    path: PathBuf,
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Opens the DB under `root`, creating it (`0600`, directory `0700`) if absent.
    pub fn open(root: &Root, cidr: &Cidr) -> Result<Store, StoreError> {
        let path = root.path(DB_PATH);
        if !path.exists() {
            create_private_file(&path)?;
        }
        Store::open_path(&path, cidr)
    }

    /// Opens an existing DB; a missing one is an error that says how to create it.
    pub fn open_existing(root: &Root, cidr: &Cidr) -> Result<Store, StoreError> {
        let path = root.path(DB_PATH);
        if !path.exists() {
            return Err(StoreError::Missing(path));
        }
        Store::open_path(&path, cidr)
    }

    fn open_path(path: &Path, cidr: &Cidr) -> Result<Store, StoreError> {
        let conn = Connection::open(path).map_err(|e| StoreError::at(path, e))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| StoreError::at(path, e))?;
        conn.pragma_update(None, "foreign_keys", true)
            .and_then(|_| conn.pragma_update(None, "journal_mode", "WAL"))
            .and_then(|_| conn.pragma_update(None, "synchronous", "NORMAL"))
            .map_err(|e| StoreError::at(path, e))?;
        let mut store = Store {
            conn,
            cidr: *cidr,
            path: path.to_path_buf(),
        };
        schema::migrate(&mut store.conn).map_err(|e| e.with_path(path))?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn cidr(&self) -> &Cidr {
        &self.cidr
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction; commits only if it succeeds.
    pub(crate) fn write<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction<'_>, &Cidr) -> Result<T, E>,
    ) -> Result<T, E> {
        let cidr = self.cidr;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let out = f(&tx, &cidr)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// A number that changes whenever any connection commits a change; cheap to poll.
    pub fn generation(&self) -> Result<u64, StoreError> {
        let v: i64 =
            self.conn
                .query_row("SELECT value FROM meta WHERE key = 'generation'", [], |r| {
                    r.get(0)
                })?;
        Ok(v as u64)
    }

    /// `PRAGMA integrity_check` and foreign keys: `Ok` when the file is consistent.
    pub fn check(&self) -> Result<(), StoreError> {
        let r: String = self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if r != "ok" {
            return Err(StoreError::Corrupt(r));
        }
        let bad: i64 =
            self.conn
                .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                    r.get(0)
                })?;
        if bad != 0 {
            return Err(StoreError::Corrupt(format!("{bad} foreign key violations")));
        }
        Ok(())
    }
}

/// Creates an empty file `0600` (directory `0700`) so SQLite never makes it readable.
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| StoreError::Io(dir.to_path_buf(), e))?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Io(path.to_path_buf(), e)),
    }
}

#[cfg(test)]
mod tests;
