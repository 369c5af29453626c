//! The embedded userspace WireGuard backend: gotatun on a TUN interface.
//!
//! Two gotatun traps are handled here (see DESIGN.md): a device built with zero peers
//! does not bind its UDP socket when the first peer arrives, so the first peers are
//! added together with a forced reconfiguration; and a UAPI `set` on an existing peer
//! resets its session, so updates go through the Rust API (`modify_peer`), which
//! changes only the given fields.

use crate::Applied;
use crate::datapath::{self, Counters, DataPathStats, Offloads};
use crate::reconcile::PeerChange;
use crate::uapi::UapiSocket;
use crate::{InterfaceConfig, PeerConfig, PeerStats, PeerStatus, WgError};
use gotatun::device::{DeviceBuilder, Peer};
use ipnet::IpNet;
use ipnetwork::IpNetwork;
use proton_core::keys::{PresharedKey, PrivateKey, PublicKey};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use x25519_dalek::{PublicKey as XPublic, StaticSecret};

/// A running userspace WireGuard interface. Dropping it (or [`Device::down`]) removes
/// the interface and its UAPI socket.
pub(crate) struct Userspace {
    name: String,
    inner: gotatun::device::Device<(
        datapath::udp::Factory,
        datapath::tun::TunTx,
        datapath::tun::TunRx,
    )>,
    counters: Arc<Counters>,
    uapi: Option<UapiSocket>,
    /// Whether gotatun has brought its connection (UDP socket, tasks) up.
    connected: AtomicBool,
}

fn secret(key: &PrivateKey) -> StaticSecret {
    StaticSecret::from(*key.expose_bytes())
}

fn net_to_gotatun(n: &IpNet) -> IpNetwork {
    IpNetwork::new(n.addr(), n.prefix_len()).expect("an IpNet's prefix is valid")
}

fn net_from_gotatun(n: &IpNetwork) -> IpNet {
    IpNet::new(n.ip(), n.prefix()).expect("an IpNetwork's prefix is valid")
}

fn to_peer(c: &PeerConfig) -> Peer {
    let mut p = Peer::new(XPublic::from(*c.public_key.as_bytes()));
    p.endpoint = c.endpoint;
    p.allowed_ips = c.allowed_ips.iter().map(net_to_gotatun).collect();
    p.preshared_key = c.preshared_key.as_ref().map(|k| *k.expose_bytes());
    p.keepalive = c.keepalive.filter(|k| *k != 0);
    p
}

impl Userspace {
    /// Creates the TUN interface (address, MTU, up), the WireGuard device with its key,
    /// port, fwmark and initial peers, and the UAPI socket.
    pub(crate) async fn up(cfg: &InterfaceConfig) -> Result<Userspace, WgError> {
        let name = cfg.name.clone();
        let tun_err = |reason: String| WgError::Tun {
            name: name.clone(),
            reason,
        };
        let dev_err = |reason: String| WgError::Device {
            name: name.clone(),
            reason,
        };
        // Proton's own TUN and UDP sides (crate::datapath): offloads where the kernel
        // takes them. Address and up go through the netlink code shared with the kernel
        // backend.
        let counters = Counters::new();
        let plain = cfg.offloads == Offloads::Plain;
        let (tun_tx, tun_rx) = datapath::tun::create(&cfg.name, cfg.mtu, !plain, &counters)
            .map_err(|e| tun_err(e.to_string()))?;
        crate::link::configure(&cfg.name, cfg.address, cfg.mtu).await?;

        let (client, server) = gotatun::device::uapi::UapiServer::new();
        let has_peers = !cfg.peers.is_empty();
        let mut builder = DeviceBuilder::new()
            .with_udp(datapath::udp::Factory::new(plain, counters.clone()))
            .with_ip_pair(tun_tx, tun_rx)
            .with_private_key(secret(&cfg.private_key))
            .with_uapi(server)
            .with_peers(cfg.peers.iter().map(to_peer))
            .with_listen_port(cfg.listen_port.unwrap_or(0));
        if let Some(mark) = cfg.fwmark.filter(|m| *m != 0) {
            builder = builder.with_fwmark(mark);
        }
        let inner = builder.build().await.map_err(|e| dev_err(e.to_string()))?;
        let uapi = UapiSocket::bind(&cfg.uapi_dir, &cfg.name, client)?;
        let device = Userspace {
            name: cfg.name.clone(),
            inner,
            counters,
            uapi: Some(uapi),
            connected: AtomicBool::new(has_peers),
        };
        tracing::info!(iface = %device.name, port = device.listen_port().await, "WireGuard interface up (userspace)");
        Ok(device)
    }

    fn err(&self, reason: String) -> WgError {
        WgError::Device {
            name: self.name.clone(),
            reason,
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The UDP port WireGuard listens on.
    pub(crate) async fn listen_port(&self) -> u16 {
        self.inner.read(async |d| d.listen_port()).await
    }

    /// Offloads in use and syscall/packet counters of the data plane.
    pub(crate) fn datapath_stats(&self) -> DataPathStats {
        self.counters.snapshot()
    }

    /// The peers on the device, with handshake age and counters.
    pub(crate) async fn peers(&self) -> Vec<PeerStatus> {
        self.inner
            .peers()
            .await
            .into_iter()
            .map(|ps| PeerStatus {
                config: PeerConfig {
                    public_key: PublicKey::from_bytes(ps.peer.public_key.to_bytes()),
                    allowed_ips: ps.peer.allowed_ips.iter().map(net_from_gotatun).collect(),
                    endpoint: ps.peer.endpoint,
                    keepalive: ps.peer.keepalive,
                    preshared_key: ps.peer.preshared_key.map(PresharedKey::from_bytes),
                },
                stats: PeerStats {
                    last_handshake: ps.stats.last_handshake,
                    rx_bytes: ps.stats.rx_bytes as u64,
                    tx_bytes: ps.stats.tx_bytes as u64,
                },
            })
            .collect()
    }

    /// Applies changes in one write; existing peers are modified in place.
    pub(crate) async fn apply(&self, changes: &[PeerChange]) -> Result<Applied, WgError> {
        if changes.is_empty() {
            return Ok(Applied::default());
        }
        let mut applied = Applied::default();
        let connected = self.connected.load(Ordering::SeqCst);
        self.inner
            .write(async |d| {
                for change in changes {
                    match change {
                        PeerChange::Remove(k) => {
                            if d.remove_peer(&XPublic::from(*k.as_bytes())).await {
                                applied.removed += 1;
                            }
                        }
                        PeerChange::Update(c) => {
                            let key = XPublic::from(*c.public_key.as_bytes());
                            let modified = d
                                .modify_peer(&key, |p| {
                                    p.set_keepalive(c.keepalive.filter(|k| *k != 0));
                                    p.set_preshared_key(
                                        c.preshared_key.as_ref().map(|k| *k.expose_bytes()),
                                    );
                                    if let Some(e) = c.endpoint {
                                        p.set_endpoint(Some(e));
                                    }
                                    p.clear_allowed_ips();
                                    p.add_allowed_ips(c.allowed_ips.iter().map(net_to_gotatun));
                                })
                                .await;
                            if modified {
                                applied.updated += 1;
                            }
                        }
                        PeerChange::Add(c) => {
                            if d.add_peer(to_peer(c)) {
                                applied.added += 1;
                            }
                        }
                    }
                }
                if !connected && applied.added > 0 {
                    // gotatun brings its connection (UDP socket, tasks) up only on a
                    // reconfiguration; adding peers to a device built without any is
                    // not one. Moving the port away and back in this same write is, and
                    // the socket comes up with these first peers already in place.
                    let port = d.listen_port();
                    d.set_listen_port(port.wrapping_add(1).max(1));
                    d.set_listen_port(port);
                }
            })
            .await
            .map_err(|e| self.err(e.to_string()))?;
        if applied.added > 0 {
            self.connected.store(true, Ordering::SeqCst);
        }
        Ok(applied)
    }

    /// Replaces the interface's private key (a worker switching from an invitation's
    /// throw-away key to its own). gotatun re-binds its UDP socket on a key change;
    /// Proton's UDP factory hands it the same socket (same address, port, fwmark), so the
    /// port stays and no EADDRINUSE race with a closing socket exists.
    pub(crate) async fn set_private_key(&self, key: &PrivateKey) -> Result<(), WgError> {
        self.inner
            .set_private_key(secret(key))
            .await
            .map_err(|e| self.err(e.to_string()))
    }

    /// Stops the device: the TUN interface and the UAPI socket go away.
    pub(crate) async fn down(mut self) {
        drop(self.uapi.take());
        let name = self.name.clone();
        self.inner.stop().await;
        // gotatun's tasks let go of the TUN a moment after `stop`; wait until the
        // interface is really gone, so the same name can be created again at once.
        // Asked over netlink, not /sys/class/net: sysfs shows the namespace it was
        // mounted in, which need not be ours (the lab, the tests). If the TUN outlives
        // the wait, it is deleted outright.
        let mut gone = false;
        for _ in 0..100 {
            if !crate::link::exists(&name).await.unwrap_or(true) {
                gone = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        if !gone && let Err(e) = crate::link::delete(&name).await {
            tracing::warn!("{e}");
        }
        tracing::info!(iface = %name, "WireGuard interface down");
    }
}
