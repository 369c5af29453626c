use std::net::Ipv4Addr;
use std::path::PathBuf;

/// Every way a state operation can fail, each one line a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}: no state database here: run `proton init --endpoint HOST` first")]
    Missing(PathBuf),
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("state database: {0}")]
    Db(#[from] rusqlite::Error),
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
    #[error("this public key already belongs to peer `{0}`")]
    KeyTaken(String),
    #[error("no peer named `{0}` (see `proton peer list`)")]
    NotFound(String),
    #[error("peer `{0}` is the gateway itself and cannot be removed or renamed")]
    IsGateway(String),
    #[error("network {cidr} is full: {used} addresses in use; remove a peer or widen network.cidr")]
    Exhausted { cidr: String, used: usize },
    #[error("address {0} is already taken")]
    AddressTaken(Ipv4Addr),
    #[error("the gateway is already registered")]
    GatewayExists,
    #[error("state database is damaged: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Invalid(String),
}

impl StoreError {
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
            other => other,
        }
    }
}
