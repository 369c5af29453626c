//! Kernel WireGuard: the link over rtnetlink (shared with the userspace backend), the
//! WireGuard configuration over generic netlink with the `wireguard-uapi` crate, which
//! splits a large peer list over several messages the way `wg` does (the kernel caps
//! one message's size) and parses `WG_CMD_GET_DEVICE` dumps into plain structs.
//!
//! The kernel changes a peer in place: a set without `WGPEER_F_REPLACE_ALLOWEDIPS`
//! or with new keepalive/endpoint keeps its session, so an update here never resets.

use crate::reconcile::PeerChange;
use crate::{InterfaceConfig, PeerConfig, PeerStats, PeerStatus, WgError};
use ipnet::IpNet;
use proton_core::keys::{PresharedKey, PrivateKey, PublicKey};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wireguard_uapi::set::{AllowedIp, Device, Peer, WgDeviceF, WgPeerF};
use wireguard_uapi::{DeviceInterface, WgSocket};

/// A peer's fields, owned, for the borrowing `wireguard_uapi::set` builders.
#[derive(Debug)]
pub(crate) struct OwnedPeer {
    key: [u8; 32],
    remove: bool,
    /// `Some`: replace the allowed IPs with these.
    allowed: Option<Vec<(IpAddr, u8)>>,
    endpoint: Option<SocketAddr>,
    keepalive: Option<u16>,
    /// All zeros clears the key (the kernel's convention).
    psk: Option<[u8; 32]>,
}

impl OwnedPeer {
    fn set(c: &PeerConfig) -> OwnedPeer {
        OwnedPeer {
            key: *c.public_key.as_bytes(),
            remove: false,
            allowed: Some(
                c.allowed_ips
                    .iter()
                    .map(|n| (n.addr(), n.prefix_len()))
                    .collect(),
            ),
            endpoint: c.endpoint,
            // 0 turns keepalive off, so a dropped keepalive is really dropped.
            keepalive: Some(c.keepalive.unwrap_or(0)),
            psk: Some(
                c.preshared_key
                    .as_ref()
                    .map_or([0; 32], |k| *k.expose_bytes()),
            ),
        }
    }

    pub(crate) fn from_change(change: &PeerChange) -> OwnedPeer {
        match change {
            PeerChange::Add(c) | PeerChange::Update(c) => OwnedPeer::set(c),
            PeerChange::Remove(k) => OwnedPeer {
                key: *k.as_bytes(),
                remove: true,
                allowed: None,
                endpoint: None,
                keepalive: None,
                psk: None,
            },
        }
    }

    fn as_set(&self) -> Peer<'_> {
        let mut p = Peer::from_public_key(&self.key);
        let mut flags = Vec::new();
        if self.remove {
            flags.push(WgPeerF::RemoveMe);
        }
        if let Some(allowed) = &self.allowed {
            flags.push(WgPeerF::ReplaceAllowedIps);
            p = p.allowed_ips(
                allowed
                    .iter()
                    .map(|(ip, len)| {
                        let mut a = AllowedIp::from_ipaddr(ip);
                        a.cidr_mask = Some(*len);
                        a
                    })
                    .collect(),
            );
        }
        if let Some(e) = &self.endpoint {
            p = p.endpoint(e);
        }
        if let Some(k) = self.keepalive {
            p = p.persistent_keepalive_interval(k);
        }
        if let Some(psk) = &self.psk {
            p = p.preshared_key(psk);
        }
        p.flags(flags)
    }
}

/// Key, listen port, fwmark of a whole interface.
pub(crate) type Base = ([u8; 32], u16, u32);

/// The message that applies `peers` to interface `name`; with `base`, the interface's
/// key, port and fwmark are set too, and with `replace` its peer list is replaced.
pub(crate) fn set_message<'a>(
    name: &'a str,
    base: Option<&'a Base>,
    replace: bool,
    peers: &'a [OwnedPeer],
) -> Device<'a> {
    let mut d = Device::from_ifname(name).peers(peers.iter().map(OwnedPeer::as_set).collect());
    if replace {
        d = d.flags(vec![WgDeviceF::ReplacePeers]);
    }
    if let Some((key, port, mark)) = base {
        d = d.private_key(key).listen_port(*port).fwmark(*mark);
    }
    d
}

/// A kernel WireGuard interface.
pub(crate) struct Kernel {
    name: String,
}

impl Kernel {
    fn err(name: &str, reason: impl std::fmt::Display) -> WgError {
        WgError::Device {
            name: name.to_string(),
            reason: reason.to_string(),
        }
    }

    /// Runs `f` on a fresh generic netlink socket, off the async runtime (the socket
    /// is blocking).
    async fn with_socket<T: Send + 'static>(
        name: &str,
        f: impl FnOnce(&mut WgSocket) -> Result<T, String> + Send + 'static,
    ) -> Result<T, WgError> {
        let n = name.to_string();
        tokio::task::spawn_blocking(move || {
            let mut s = WgSocket::connect().map_err(|e| format!("generic netlink: {e}"))?;
            f(&mut s)
        })
        .await
        .map_err(|e| Kernel::err(&n, e))?
        .map_err(|e| Kernel::err(&n, e))
    }

    pub(crate) async fn up(cfg: &InterfaceConfig) -> Result<Kernel, WgError> {
        let name = cfg.name.clone();
        // A link left by a previous run (a restarted daemon) is adopted, not replaced:
        // the kernel ignores a key and port equal to the current ones, and the initial
        // peers are reconciled below, so live sessions survive the restart.
        let existed = crate::link::exists(&name).await?;
        if !existed {
            crate::link::create_wireguard(&name).await?;
        }
        let base = (
            *cfg.private_key.expose_bytes(),
            cfg.listen_port.unwrap_or(0),
            cfg.fwmark.unwrap_or(0),
        );
        let peers: Vec<OwnedPeer> = if existed {
            Vec::new()
        } else {
            cfg.peers.iter().map(OwnedPeer::set).collect()
        };
        let n = name.clone();
        let result = Kernel::with_socket(&name, move |s| {
            s.set_device(set_message(&n, Some(&base), !existed, &peers))
                .map_err(|e| format!("setting key, port, fwmark and peers: {e}"))
        })
        .await;
        if let Err(e) = result {
            if !existed {
                let _ = crate::link::delete(&name).await;
            }
            return Err(e);
        }
        let kernel = Kernel { name };
        if existed {
            let actual = kernel.peers().await?;
            kernel
                .apply(&crate::reconcile::plan(&cfg.peers, &actual))
                .await?;
        }
        crate::link::configure(&kernel.name, cfg.address, cfg.mtu).await?;
        tracing::info!(iface = %kernel.name, adopted = existed, "WireGuard interface up (kernel)");
        Ok(kernel)
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    async fn get(&self) -> Result<wireguard_uapi::get::Device, WgError> {
        let n = self.name.clone();
        Kernel::with_socket(&self.name, move |s| {
            s.get_device(DeviceInterface::from_name(n))
                .map_err(|e| format!("reading the device: {e}"))
        })
        .await
    }

    pub(crate) async fn listen_port(&self) -> Result<u16, WgError> {
        Ok(self.get().await?.listen_port)
    }

    pub(crate) async fn peers(&self) -> Result<Vec<PeerStatus>, WgError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Ok(self
            .get()
            .await?
            .peers
            .into_iter()
            .map(|p| status(p, now))
            .collect())
    }

    /// Applies all changes in as few messages as the kernel allows.
    pub(crate) async fn apply(&self, changes: &[PeerChange]) -> Result<(), WgError> {
        let peers: Vec<OwnedPeer> = changes.iter().map(OwnedPeer::from_change).collect();
        let n = self.name.clone();
        Kernel::with_socket(&self.name, move |s| {
            s.set_device(set_message(&n, None, false, &peers))
                .map_err(|e| format!("changing peers: {e}"))
        })
        .await
    }

    pub(crate) async fn set_private_key(&self, key: &PrivateKey) -> Result<(), WgError> {
        let key = *key.expose_bytes();
        let n = self.name.clone();
        Kernel::with_socket(&self.name, move |s| {
            s.set_device(Device::from_ifname(n.as_str()).private_key(&key))
                .map_err(|e| format!("setting the private key: {e}"))
        })
        .await
    }

    pub(crate) async fn down(self) -> Result<(), WgError> {
        crate::link::delete(&self.name).await
    }
}

/// A kernel peer as a [`PeerStatus`]; the kernel reports the handshake as a wall-clock
/// time (zero: never), turned into an age against `now`.
pub(crate) fn status(p: wireguard_uapi::get::Peer, now: Duration) -> PeerStatus {
    let hs = p.last_handshake_time;
    PeerStatus {
        config: PeerConfig {
            public_key: PublicKey::from_bytes(p.public_key),
            allowed_ips: p
                .allowed_ips
                .iter()
                .filter_map(|a| IpNet::new(a.ipaddr, a.cidr_mask).ok())
                .collect(),
            endpoint: p.endpoint,
            keepalive: Some(p.persistent_keepalive_interval).filter(|k| *k != 0),
            preshared_key: Some(p.preshared_key)
                .filter(|k| *k != [0; 32])
                .map(PresharedKey::from_bytes),
        },
        stats: PeerStats {
            last_handshake: (!hs.is_zero()).then(|| now.saturating_sub(hs)),
            rx_bytes: p.rx_bytes,
            tx_bytes: p.tx_bytes,
        },
    }
}

#[cfg(test)]
#[path = "kernel_tests.rs"]
mod tests;
