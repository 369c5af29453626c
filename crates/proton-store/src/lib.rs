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
//! let mut store = Store::open_existing(&Root::new("/"), &cidr).unwrap();
//! let key = proton_core::keys::PrivateKey::generate().public_key();
//! let peer = store.add_peer(&"laptop".parse().unwrap(), Role::Client, key, "cli").unwrap();
//! println!("{} got {}", peer.name, peer.address);
//! ```
#![deny(unsafe_code)]

mod audit;
mod cleanup;
mod endpoint;
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
pub use peer::{InvalidPeer, NewPeer, Peer, PeerId, PeerName, PeerState, Role};
pub use proton_core::peer::{Allow, Flow, L4};

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
    /// Device and inode of the file when it was opened (see [`Store::still_on_disk`]).
    file_id: (u64, u64),
}

/// The system clock in unix seconds.
pub fn system_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Creates the state database of a new gateway (`proton init`, nothing else): the
    /// file (`0600`, directory `0700`), the schema, and the gateway's own row, which is
    /// what marks a Proton database from then on. Refuses if the file already exists.
    pub fn create(
        root: &Root,
        cidr: &Cidr,
        gateway_name: &str,
        gateway_key: proton_core::keys::PublicKey,
    ) -> Result<(Store, Peer), StoreError> {
        let path = root.path(DB_PATH);
        create_private_file(&path)?;
        let mut store = Store::connect(&path, cidr)?;
        store
            .conn
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| StoreError::at(&path, e))?;
        schema::migrate(&mut store.conn)
            .map_err(|e| e.with_path(&path).locked_at(&path, BUSY_TIMEOUT))?;
        let gateway = store.add_gateway(gateway_name, gateway_key)?;
        store.remember_network()?;
        Ok((store, gateway))
    }

    /// Opens the existing state database. Refuses, changing nothing, a file that is not
    /// a Proton database of a known schema version holding the gateway's row (a 0-byte,
    /// truncated or foreign file would otherwise read as a network with no peers), and a
    /// spec whose `network.cidr` is not the range the peers were given addresses in.
    pub fn open_existing(root: &Root, cidr: &Cidr) -> Result<Store, StoreError> {
        let path = root.path(DB_PATH);
        if !path.exists() {
            // A gateway that was set up (its spec or key is there) lost its database:
            // `proton init` would make a new key and cut every peer off.
            let set_up = [
                proton_core::spec::SPEC_PATH,
                proton_core::paths::GATEWAY_KEY,
            ]
            .iter()
            .any(|p| root.exists(p));
            return Err(if set_up {
                StoreError::Deleted(path)
            } else {
                StoreError::Missing(path)
            });
        }
        check_private(&path)?;
        check_not_empty(&path)?;
        let mut store = Store::connect(&path, cidr)?;
        identify(&store.conn).map_err(|e| e.with_path(&path))?;
        // Only now anything may write: WAL mode, then pending migrations.
        store
            .conn
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| StoreError::at(&path, e))?;
        schema::migrate(&mut store.conn)
            .map_err(|e| e.with_path(&path).locked_at(&path, BUSY_TIMEOUT))?;
        store.check_network()?;
        Ok(store)
    }

    /// A connection with Proton's settings; nothing written yet (not even the journal
    /// mode: setting WAL on a 0-byte file would write a database header into it).
    fn connect(path: &Path, cidr: &Cidr) -> Result<Store, StoreError> {
        // No SQLITE_OPEN_CREATE: the file was made 0600 beforehand. Should it vanish in
        // between, SQLite must fail rather than create a world-readable one.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| opening(path, e))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| opening(path, e))?;
        conn.pragma_update(None, "foreign_keys", true)
            .and_then(|_| conn.pragma_update(None, "synchronous", "NORMAL"))
            .map_err(|e| opening(path, e))?;
        let file_id = file_id(path)?;
        Ok(Store {
            conn,
            cidr: *cidr,
            path: path.to_path_buf(),
            clock: Arc::new(system_now),
            busy_timeout: BUSY_TIMEOUT,
            file_id,
        })
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

    /// Records the range the peers' addresses are given from (`meta`: the network
    /// address as an integer, and the prefix), so a later spec edit can be caught.
    fn remember_network(&mut self) -> Result<(), StoreError> {
        let (net, prefix) = (u32::from(self.cidr.network()), self.cidr.prefix_len());
        self.conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('network_address', ?1), ('network_prefix', ?2)",
            rusqlite::params![net as i64, prefix as i64],
        )?;
        Ok(())
    }

    /// The range recorded by [`Store::remember_network`]; `None` in a DB made before.
    fn recorded_network(&self) -> Result<Option<Cidr>, StoreError> {
        let get = |key: &str| -> Result<Option<i64>, StoreError> {
            use rusqlite::OptionalExtension;
            Ok(self
                .conn
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()?)
        };
        let (Some(net), Some(prefix)) = (get("network_address")?, get("network_prefix")?) else {
            return Ok(None);
        };
        let net = ipnet::Ipv4Net::new(std::net::Ipv4Addr::from(net as u32), prefix as u8)
            .map_err(|e| StoreError::Corrupt(format!("recorded network: {e}")))?;
        Cidr::new(net)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("recorded network: {e}")))
    }

    /// Refuses a spec whose `network.cidr` differs from the range the peers' addresses
    /// came from: the gateway would take a new address outside every peer's AllowedIPs.
    fn check_network(&mut self) -> Result<(), StoreError> {
        let spec = self.cidr;
        let recorded = self.recorded_network()?;
        if recorded == Some(spec) {
            return Ok(());
        }
        let (gateway, outside, peers): (String, i64, i64) = {
            let gateway: String = self.conn.query_row(
                "SELECT address FROM peers WHERE role = 'gateway' AND revoked_at IS NULL",
                [],
                |r| r.get(0),
            )?;
            let mut outside = 0;
            let mut peers = 0;
            let mut stmt = self.conn.prepare(
                "SELECT address FROM peers WHERE role != 'gateway' AND revoked_at IS NULL",
            )?;
            for a in stmt.query_map([], |r| r.get::<_, String>(0))? {
                peers += 1;
                match a?.parse::<std::net::Ipv4Addr>() {
                    Ok(a) if spec.is_assignable(a) => {}
                    _ => outside += 1,
                }
            }
            (gateway, outside, peers)
        };
        // A DB from before the range was recorded adopts the spec's range if the gateway
        // and every peer sit where that range puts them.
        if recorded.is_none() && gateway == spec.gateway().to_string() && outside == 0 {
            return self.remember_network();
        }
        Err(StoreError::NetworkChanged {
            spec: spec.to_string(),
            db: match recorded {
                Some(r) => r.to_string(),
                None => format!("the range of {gateway}"),
            },
            gateway,
            peers: peers as usize,
        })
    }

    /// Whether the file this handle opened is still the DB at its path, and still looks
    /// is not empty: a long-lived handle would otherwise keep reading a deleted file (or
    /// its cache of a truncated one) and never notice. One `stat`; cheap to poll.
    pub fn still_on_disk(&self) -> Result<(), StoreError> {
        if !self.path.exists() {
            return Err(StoreError::Deleted(self.path.clone()));
        }
        if file_id(&self.path)? != self.file_id {
            return Err(StoreError::NotProton {
                path: self.path.clone(),
                why: "the file was replaced while in use".into(),
            });
        }
        check_not_empty(&self.path)
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

impl Drop for Store {
    /// A handle whose file was deleted, truncated or replaced under it must not write its
    /// WAL back on close (SQLite checkpoints when the last connection closes): that would
    /// write stale pages into whatever is at the path now.
    fn drop(&mut self) {
        if self.still_on_disk().is_err() {
            let _ = self.conn.set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                true,
            );
        }
    }
}

/// An SQLite error while opening `path`; "not a database" is a [`StoreError::NotProton`].
fn opening(path: &Path, e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => StoreError::NotProton {
            path: path.to_path_buf(),
            why: "the file is not an SQLite database".into(),
        },
        _ => StoreError::at(path, e),
    }
}

fn file_id(path: &Path) -> Result<(u64, u64), StoreError> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).map_err(|e| StoreError::Io(path.to_path_buf(), e))?;
    Ok((m.dev(), m.ino()))
}

/// Refuses, before SQLite touches it, a 0-byte file: SQLite would take it for a new,
/// empty database. Only `stat`: opening and closing the file ourselves would drop the
/// POSIX locks this process's SQLite connections hold on it (see SQLite's "How To
/// Corrupt An SQLite Database File", section 2.2).
fn check_not_empty(path: &Path) -> Result<(), StoreError> {
    let len = std::fs::metadata(path)
        .map_err(|e| StoreError::Io(path.to_path_buf(), e))?
        .len();
    if len == 0 {
        return Err(StoreError::NotProton {
            path: path.to_path_buf(),
            why: "the file is empty (0 bytes)".into(),
        });
    }
    Ok(())
}

/// Reads (never writes) whether `conn` is a Proton database: a schema version this
/// code knows and the gateway's own row, which `proton init` writes with the schema.
fn identify(conn: &Connection) -> Result<(), StoreError> {
    let not = |why: String| StoreError::NotProton {
        path: PathBuf::new(),
        why,
    };
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| match opening(Path::new(""), e) {
            StoreError::Sqlite { source, .. } => StoreError::Db(source),
            other => other,
        })?;
    let known = schema::MIGRATIONS.len() as i64;
    if found > known {
        return Err(StoreError::SchemaTooNew {
            path: PathBuf::new(),
            found,
            known,
        });
    }
    if found < 1 {
        return Err(not(format!("schema version {found}, no Proton tables")));
    }
    let gateways: i64 = conn
        .query_row(
            "SELECT count(*) FROM peers WHERE role = 'gateway' AND revoked_at IS NULL",
            [],
            |r| r.get(0),
        )
        .map_err(|_| not("it has no Proton peers table".into()))?;
    if gateways != 1 {
        return Err(not(format!("it holds {gateways} gateway rows, not 1")));
    }
    Ok(())
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
/// `create_new` is `O_EXCL`: an existing file (another process's) is an error.
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
        Err(e) => Err(StoreError::Io(path.to_path_buf(), e)),
    }
}

#[cfg(test)]
mod tests;
