use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

/// Every way a state operation can fail, each one line a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}: no state database here: run `proton init --endpoint HOST` first")]
    Missing(PathBuf),
    #[error(
        "{0} is missing, but this gateway was set up (its spec or key is there): the database held every peer; restore it from a backup (`proton init --force` would start a new network with a new key, and every peer would have to rejoin)"
    )]
    Deleted(PathBuf),
    #[error(
        "{path} is not a Proton state database ({why}); refusing to use it, nothing was changed: restore it from a backup (`proton init` creates a database, and would start a new network)"
    )]
    NotProton { path: PathBuf, why: String },
    #[error(
        "network.cidr is {spec}, but this gateway's {peers} peers have addresses in {db} (gateway {gateway}): a new range would move the gateway outside every peer's AllowedIPs and cut them all off; put network.cidr back to {db} (a new range means a new network that every peer rejoins: see the README, \"Changing the network range\")"
    )]
    NetworkChanged {
        spec: String,
        db: String,
        gateway: String,
        peers: usize,
    },
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("state database: {0}")]
    Db(rusqlite::Error),
    #[error(
        "{path} stayed locked by another proton process for {waited:?}: retry, or find the stuck process with `fuser {path}`"
    )]
    Locked { path: PathBuf, waited: Duration },
    #[error("{path} has mode {mode:04o}, readable by others: run `chmod 600 {path}`")]
    NotPrivate { path: PathBuf, mode: u32 },
    #[error(
        "{path} has schema version {found}, newer than this proton knows ({known}): upgrade proton"
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error(
        "a peer named `{0}` already exists: choose another name or `proton peer remove {0}` first"
    )]
    NameTaken(String),
    #[error(
        "`{0}` was removed, but its K8s node is not deleted yet: a new peer cannot take the name until it is (run `proton apply` to retry the cleanup)"
    )]
    NodeCleanupPending(String),
    #[error("this public key already belongs to peer `{0}`")]
    KeyTaken(String),
    #[error("no peer named `{0}` (see `proton peer list`)")]
    NotFound(String),
    #[error("peer `{0}` is the gateway itself and cannot be removed or renamed")]
    IsGateway(String),
    #[error(
        "network {cidr} is full: {used} addresses in use; remove a peer you no longer need (`proton peer list`, `proton peer remove NAME`). Editing network.cidr would cut every peer off: a larger range is a new network (see the README, \"Changing the network range\")"
    )]
    Exhausted { cidr: String, used: usize },
    #[error("address {0} is already taken")]
    AddressTaken(Ipv4Addr),
    #[error("the gateway is already registered")]
    GatewayExists,
    #[error("an invitation with this secret already exists: issue it with a fresh secret")]
    SecretReused,
    #[error("state database is damaged: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Invalid(String),
}

impl From<proton_core::peer::InvalidPeer> for StoreError {
    fn from(e: proton_core::peer::InvalidPeer) -> Self {
        StoreError::Invalid(e.0)
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Db(e)
    }
}

/// Whether SQLite gave up waiting for another connection's lock.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

impl StoreError {
    /// Turns "database is locked" into [`StoreError::Locked`] naming the file.
    pub(crate) fn locked_at(self, path: &std::path::Path, waited: Duration) -> StoreError {
        match self {
            StoreError::Db(e) | StoreError::Sqlite { source: e, .. } if is_busy(&e) => {
                StoreError::Locked {
                    path: path.to_path_buf(),
                    waited,
                }
            }
            other => other,
        }
    }

    pub(crate) fn at(path: &std::path::Path, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn with_path(self, path: &std::path::Path) -> StoreError {
        match self {
            StoreError::Db(source) => StoreError::at(path, source),
            StoreError::SchemaTooNew { found, known, .. } => StoreError::SchemaTooNew {
                path: path.to_path_buf(),
                found,
                known,
            },
            StoreError::NotProton { why, .. } => StoreError::NotProton {
                path: path.to_path_buf(),
                why,
            },
            other => other,
        }
    }
}
