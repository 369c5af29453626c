//! What most gateway commands start from: the spec, the gateway key and the state DB.

use crate::gateway_key::KeyFileError;
use proton_core::host::Root;
use proton_core::keys::PrivateKey;
use proton_core::paths::GATEWAY_KEY;
use proton_core::spec::{Spec, SpecError};
use proton_core::view::Network;
use proton_core::wgconf::{PeerSection, WgQuickConfig};
use proton_store::{Store, StoreError};

/// A gateway's spec and state DB, opened.
pub struct Gateway {
    pub root: Root,
    pub spec: Spec,
    pub store: Store,
}

/// Why a gateway command could not read what it starts from, or the DB refused.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The spec's own message says it all (bad input: exit code 2).
    #[error("{0}")]
    Spec(SpecError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] KeyFileError),
}

impl GatewayError {
    pub fn hint(&self) -> Option<String> {
        match self {
            GatewayError::Key(e) => e.hint().map(Into::into),
            _ => None,
        }
    }

    pub fn is_bad_input(&self) -> bool {
        matches!(self, GatewayError::Spec(_))
    }
}

impl Gateway {
    pub fn load(root: &Root) -> Result<Gateway, GatewayError> {
        let spec = Spec::load(root).map_err(GatewayError::Spec)?;
        let store = Store::open_existing(root, &spec.network.cidr)?;
        Ok(Gateway {
            root: root.clone(),
            spec,
            store,
        })
    }

    pub fn private_key(&self) -> Result<PrivateKey, GatewayError> {
        Ok(crate::gateway_key::read_private_key(
            &self.root,
            GATEWAY_KEY,
        )?)
    }

    /// The gateway's wg-quick configuration: interface from the spec, peers from the DB.
    pub fn wg_quick_config(&self) -> Result<WgQuickConfig, GatewayError> {
        let mut peers = Vec::new();
        for p in self.store.device_peers(proton_store::system_now())? {
            let mut peer = PeerSection::new(p.public_key);
            peer.name = Some(format!("{} ({})", p.name, p.role));
            peer.allowed_ips = vec![ipnet::Ipv4Net::from(p.address).into()];
            peers.push(peer);
        }
        Ok(Network::new(&self.spec).gateway_config(self.private_key()?, peers))
    }
}

/// `From<StoreError>` (and `GatewayError`) for a command's error enum whose
/// `Gateway(GatewayError)` variant holds them, so `?` works on store calls.
macro_rules! from_gateway_errors {
    ($error:ident) => {
        impl From<proton_store::StoreError> for $error {
            fn from(e: proton_store::StoreError) -> Self {
                $error::Gateway(e.into())
            }
        }
        impl From<$crate::gateway::GatewayError> for $error {
            fn from(e: $crate::gateway::GatewayError) -> Self {
                $error::Gateway(e)
            }
        }
    };
}
pub(crate) use from_gateway_errors;
