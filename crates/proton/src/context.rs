//! What most gateway commands start from: the spec, the gateway key and the DB.

use crate::output::failure;
use proton_core::host::Root;
use proton_core::keys::PrivateKey;
use proton_core::paths::GATEWAY_KEY;
use proton_core::spec::Spec;
use proton_core::view::Network;
use proton_core::wgconf::{PeerSection, WgQuickConfig};
use proton_store::Store;

pub struct GatewayContext {
    pub root: Root,
    pub spec: Spec,
    pub store: Store,
}

impl GatewayContext {
    pub fn load(root: &Root) -> anyhow::Result<GatewayContext> {
        let spec = Spec::load(root).map_err(|e| crate::output::bad_input(e.to_string(), None))?;
        let store = Store::open_existing(root, &spec.network.cidr)?;
        Ok(GatewayContext {
            root: root.clone(),
            spec,
            store,
        })
    }

    pub fn private_key(&self) -> anyhow::Result<PrivateKey> {
        read_private_key(&self.root, GATEWAY_KEY)
    }

    /// The gateway's wg-quick configuration: interface from the spec, peers from the DB.
    pub fn wg_quick_config(&self) -> anyhow::Result<WgQuickConfig> {
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

/// Reads a base64 private key file, warning when it is readable by others.
pub fn read_private_key(root: &Root, path: &str) -> anyhow::Result<PrivateKey> {
    proton_ops::gateway_key::read_private_key(root, path).map_err(|e| match e.hint() {
        Some(hint) => failure(e.to_string(), hint),
        None => e.into(),
    })
}
