//! A joined worker's tunnel: its configuration (`/etc/proton/agent.conf` for the
//! userspace `proton agent`, `/etc/wireguard/<iface>.conf` for wg-quick) and its live
//! link to the gateway.

use crate::OpsError;
use crate::wgshow::{self, WgPeer};
use proton_core::host::Root;
use proton_core::keys::PublicKey;
use proton_core::spec::Endpoint;
use proton_core::wgconf::{DEFAULT_INTERFACE, WgQuickConfig, recorded_interface};
use serde::Serialize;

pub use proton_core::paths::AGENT_CONF;

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
        (TunnelKind::Agent, AGENT_CONF.to_string()),
        (TunnelKind::WgQuick, wg_quick_path(iface)),
    ];
    for (kind, path) in candidates {
        let Some(text) = root.read_optional(&path)? else {
            continue;
        };
        let bad = |message: String| OpsError::Config {
            path: path.clone(),
            message,
        };
        let conf = WgQuickConfig::parse(&text).map_err(|e| bad(e.to_string()))?;
        // `proton agent` brings up the interface agent.conf records (the one the join
        // was made with), whatever `--interface` this command was given.
        let name = match kind {
            TunnelKind::Agent => recorded_interface(&text)
                .map_err(|e| bad(e.to_string()))?
                .unwrap_or(DEFAULT_INTERFACE),
            TunnelKind::WgQuick => iface,
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use proton_core::keys::PrivateKey;

    fn agent_conf(header: &str) -> String {
        let key = PrivateKey::generate();
        let gateway = PrivateKey::generate().public_key();
        format!(
            "{header}[Interface]\nPrivateKey = {}\nAddress = 10.99.0.5/24\n\n[Peer]\nPublicKey = {}\nEndpoint = gw.example.org:51820\nAllowedIPs = 10.99.0.0/24\nPersistentKeepalive = 25\n",
            key.expose_base64().as_str(),
            gateway.to_base64()
        )
    }

    fn root_with(text: &str) -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        root.write_secret(AGENT_CONF, text.as_bytes()).unwrap();
        (dir, root)
    }

    #[test]
    fn an_agent_tunnel_is_on_the_interface_agent_conf_records() {
        let (_dir, root) = root_with(&agent_conf("# Proton-Interface = wg7\n"));
        let t = load(&root, "wg0").unwrap().unwrap();
        assert_eq!(t.kind, TunnelKind::Agent);
        assert_eq!(t.interface, "wg7");
        assert_eq!(t.config_path, AGENT_CONF);
    }

    #[test]
    fn an_agent_conf_without_the_line_means_wg0() {
        let (_dir, root) = root_with(&agent_conf(""));
        assert_eq!(load(&root, "wg3").unwrap().unwrap().interface, "wg0");
    }

    #[test]
    fn a_bad_recorded_interface_is_a_config_error() {
        let (_dir, root) = root_with(&agent_conf("# Proton-Interface = a/b\n"));
        let err = load(&root, "wg0").unwrap_err().to_string();
        assert!(err.contains("`a/b` is not an interface name"), "{err}");
    }
}
