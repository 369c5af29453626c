//! A joined worker's tunnel: its configuration (`/etc/proton/agent.conf` for the
//! userspace `proton agent`, `/etc/wireguard/<iface>.conf` for wg-quick) and its live
//! link to the gateway.

use crate::OpsError;
use crate::wgshow::{self, WgPeer};
use proton_core::host::Root;
use proton_core::keys::PublicKey;
use proton_core::spec::Endpoint;
use proton_core::wgconf::WgQuickConfig;
use serde::Serialize;

pub use proton_core::paths::AGENT_CONF;
/// The interface `proton agent` creates.
pub const AGENT_INTERFACE: &str = "wg0";

/// How the worker's tunnel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TunnelKind {
    /// `proton agent` (proton-agent.service), which re-resolves the endpoint itself.
    Agent,
    /// `wg-quick@<iface>` with the kernel module; `proton reresolve` follows the name.
    WgQuick,
}

/// What the worker's configuration says (no key material kept).
#[derive(Debug, Clone)]
pub struct WorkerTunnel {
    pub kind: TunnelKind,
    pub config_path: String,
    pub interface: String,
    pub address: String,
    pub mtu: Option<u16>,
    pub gateway_key: PublicKey,
    pub endpoint: Endpoint,
    pub keepalive: Option<u16>,
}

fn wg_quick_path(iface: &str) -> String {
    format!("/etc/wireguard/{iface}.conf")
}

/// The worker's tunnel configuration, if this machine joined.
pub fn load(root: &Root, iface: &str) -> Result<Option<WorkerTunnel>, OpsError> {
    let candidates = [
        (TunnelKind::Agent, AGENT_CONF.to_string(), AGENT_INTERFACE),
        (TunnelKind::WgQuick, wg_quick_path(iface), iface),
    ];
    for (kind, path, name) in candidates {
        let Some(text) = root.read_optional(&path)? else {
            continue;
        };
        let bad = |message: String| OpsError::Config {
            path: path.clone(),
            message,
        };
        let conf = WgQuickConfig::parse(&text).map_err(|e| bad(e.to_string()))?;
        let peer = conf
            .peers
            .first()
            .ok_or_else(|| bad("no [Peer] (the gateway)".into()))?;
        let endpoint = peer
            .endpoint
            .clone()
            .ok_or_else(|| bad("the gateway peer has no Endpoint".into()))?;
        return Ok(Some(WorkerTunnel {
            kind,
            config_path: path.clone(),
            interface: name.to_string(),
            address: conf
                .interface
                .addresses
                .first()
                .map(|a| a.to_string())
                .unwrap_or_default(),
            mtu: conf.interface.mtu,
            gateway_key: peer.public_key,
            endpoint,
            keepalive: peer.persistent_keepalive,
        }));
    }
    Ok(None)
}

/// The gateway as the worker's live interface sees it; `None` when the interface is down
/// or does not have the gateway peer.
pub fn gateway_link(t: &WorkerTunnel) -> Result<Option<WgPeer>, OpsError> {
    let peers = wgshow::peers(&t.interface)?;
    let key = t.gateway_key.to_base64();
    Ok(peers.into_iter().find(|p| p.public_key == key))
}
