//! A peer's name and role: the words the CLI, the state DB and the status reply share.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A name or role that does not parse; the message says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidPeer(pub String);

/// A peer's name: an RFC 1123 label, since worker names become Kubernetes node names.
/// Serialized as the plain string; deserializing validates it like parsing does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PeerName(String);

impl PeerName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A name read back from the state DB, which only ever stored parsed names: taken
    /// as it is, so a row is never refused over a rule that changed since it was written.
    pub fn from_stored(name: String) -> PeerName {
        PeerName(name)
    }
}

impl FromStr for PeerName {
    type Err = InvalidPeer;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::spec::validate_label(s).map_err(InvalidPeer)?;
        Ok(PeerName(s.to_string()))
    }
}

impl TryFrom<String> for PeerName {
    type Error = InvalidPeer;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<PeerName> for String {
    fn from(n: PeerName) -> String {
        n.0
    }
}

impl fmt::Display for PeerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// What a peer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Gateway,
    Worker,
    Client,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::Worker => "worker",
            Role::Client => "client",
        }
    }
}

impl FromStr for Role {
    type Err = InvalidPeer;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "gateway" => Ok(Role::Gateway),
            "worker" => Ok(Role::Worker),
            "client" => Ok(Role::Client),
            other => Err(InvalidPeer(format!(
                "`{}` is not a role: use worker or client",
                crate::clip(other)
            ))),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_roles_are_plain_strings_in_json_and_names_are_checked_on_the_way_in() {
        let name: PeerName = "w1".parse().unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), r#""w1""#);
        assert_eq!(serde_json::from_str::<PeerName>(r#""w1""#).unwrap(), name);
        assert!(serde_json::from_str::<PeerName>(r#""Bad_Name""#).is_err());
        assert_eq!(serde_json::to_string(&Role::Worker).unwrap(), r#""worker""#);
        assert_eq!(
            serde_json::from_str::<Role>(r#""client""#).unwrap(),
            Role::Client
        );
    }
}
