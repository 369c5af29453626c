//! Proton's state: one SQLite file (`/var/lib/proton/proton.db`, mode `0600`) holding
//! the peers, the invitations, an audit log of every change, and the removed workers
//! whose K8s node is still to be deleted.
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
mod cleanup;
mod error;
mod grant;
mod invitation;
mod peer;
mod schema;

pub use audit::AuditEvent;
pub use cleanup::NodeCleanup;
pub use error::StoreError;
pub use grant::Grant;
pub use invitation::InvitationId;
pub use invitation::{Invitation, RedeemError};
pub use peer::{Peer, PeerId, PeerName, PeerState, Role};

use proton_core::host::Root;
use proton_core::net::Cidr;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Host path of the state database.
pub const DB_PATH: &str = "/var/lib/proton/proton.db";

/// How long a writer waits for another writer before giving up with
/// [`StoreError::Locked`]. Transactions here take milliseconds; 30 s means something
/// is stuck, not busy.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The source of "now" (unix seconds) for `created_at`, `revoked_at` and audit times.
/// Times that decide an outcome (an invitation's expiry) are passed in explicitly.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// A handle on the state database. One per thread; open as many as you like (each is
/// its own SQLite connection; WAL + `busy_timeout` let them share the file).
pub struct Store {
    conn: Connection,
    cidr: Cidr,
    path: PathBuf,
    clock: Clock,
    busy_timeout: Duration,
}

/// The system clock in unix seconds.
pub fn system_now() -> i64 {
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
        check_private(path)?;
        // No SQLITE_OPEN_CREATE: the file was made 0600 above. Should it vanish in
        // between, SQLite must fail rather than create a world-readable one.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| StoreError::at(path, e))?;
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
            clock: Arc::new(system_now),
            busy_timeout: BUSY_TIMEOUT,
        };
        schema::migrate(&mut store.conn)
            .map_err(|e| e.with_path(path).locked_at(path, BUSY_TIMEOUT))?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn cidr(&self) -> &Cidr {
        &self.cidr
    }

    /// Replaces the clock used for `created_at`, `revoked_at` and audit times (tests).
    pub fn with_clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Store {
        self.clock = Arc::new(clock);
        self
    }

    /// How long to wait for another process's write before failing with
    /// [`StoreError::Locked`] (default [`BUSY_TIMEOUT`]).
    pub fn set_busy_timeout(&mut self, timeout: Duration) -> Result<(), StoreError> {
        self.conn.busy_timeout(timeout)?;
        self.busy_timeout = timeout;
        Ok(())
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction (so concurrent writers queue on
    /// the busy handler instead of failing on lock upgrade); commits only if `f`
    /// succeeds. `f` gets the network and "now" read once the lock is held.
    pub(crate) fn write<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction<'_>, &Cidr, i64) -> Result<T, E>,
    ) -> Result<T, E> {
        let cidr = self.cidr;
        let (path, waited) = (self.path.clone(), self.busy_timeout);
        let locked = |e: rusqlite::Error| StoreError::from(e).locked_at(&path, waited);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(locked)?;
        let now = (self.clock)();
        let out = f(&tx, &cidr, now)?;
        tx.commit().map_err(locked)?;
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

/// Refuses a DB file others can read: it holds who may join the network and how.
fn check_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| StoreError::Io(path.to_path_buf(), e))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(StoreError::NotPrivate {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Creates an empty file `0600` (directory `0700`) so SQLite never makes it readable.
/// `create_new` is `O_EXCL`: if another process won the race, its file is used as is.
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
