//! Proton's WireGuard data plane.
//!
//! One interface, driven by a [`Device`], on one of two backends ([`Backend`]):
//! kernel WireGuard over netlink where the module exists, or the embedded userspace
//! implementation (`gotatun` on `/dev/net/tun`), which runs anywhere a TUN device
//! exists — LXC/OpenVZ VPSes and containers included — and serves the standard UAPI
//! socket so `wg show` and `wg set` work against it. [`detect`] resolves `Auto`. Peers change while traffic flows: [`reconcile::plan`]
//! computes the minimal changes between the peers the DB wants and those the device
//! has, and an unchanged peer is never touched (its session and counters survive).
//!
//! ```no_run
//! # async fn demo() -> Result<(), proton_wg::WgError> {
//! use proton_wg::{Backend, Device, InterfaceConfig, PeerConfig};
//! let mut cfg = InterfaceConfig::new("wg0", proton_core::keys::PrivateKey::generate(),
//!     "10.7.7.1/24".parse().unwrap());
//! cfg.listen_port = Some(51820);
//! cfg.backend = Backend::Auto; // kernel if the module is there, else userspace
//! // Keep `device` (and the tokio runtime) alive as long as the interface should be.
//! let device = Device::up(cfg).await?;
//! let worker = proton_core::keys::PrivateKey::generate().public_key();
//! device.reconcile(&[PeerConfig::host(worker, "10.7.7.2".parse().unwrap())]).await?;
//! for peer in device.peers().await {
//!     println!("{} rx={} tx={}", peer.public_key, peer.rx_bytes, peer.tx_bytes);
//! }
//! device.down().await;
//! # Ok(()) }
//! ```
#![deny(unsafe_code)]

mod backend;
mod datapath;
mod device;
mod kernel;
mod link;
pub mod reconcile;
mod uapi;
mod userspace;

pub use backend::{Backend, Detection, UnknownBackend, detect};
pub use datapath::{DataPathStats, Offloads};
pub use device::{Applied, Device};
pub use reconcile::{PeerChange, plan};

use ipnet::{IpNet, Ipv4Net};
use proton_core::keys::{PresharedKey, PrivateKey, PublicKey};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The default directory of UAPI sockets, where `wg` looks for them.
pub const UAPI_DIR: &str = "/var/run/wireguard";

/// Why the data plane failed.
#[derive(Debug, thiserror::Error)]
pub enum WgError {
    #[error("creating TUN device `{name}`: {reason} (is /dev/net/tun present, and are we root?)")]
    Tun { name: String, reason: String },
    #[error("WireGuard device `{name}`: {reason}")]
    Device { name: String, reason: String },
    #[error("network link `{name}`: {reason}")]
    Link { name: String, reason: String },
    #[error("UAPI socket {path}: {source}")]
    Uapi {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What the interface should look like.
#[derive(Debug, Clone)]
pub struct InterfaceConfig {
    pub name: String,
    pub private_key: PrivateKey,
    /// `None`: a random port (workers); the gateway listens on its spec's port.
    pub listen_port: Option<u16>,
    /// Firewall mark on WireGuard's own UDP packets (0x4000 keeps kube-proxy off them).
    pub fwmark: Option<u32>,
    pub address: Ipv4Net,
    pub mtu: u16,
    pub peers: Vec<PeerConfig>,
    /// Where the UAPI socket `<name>.sock` goes (userspace backend).
    pub uapi_dir: PathBuf,
    /// Which data plane; `new` picks `Userspace` (the one tested end to end here).
    pub backend: Backend,
    /// Userspace backend: kernel offloads (TUN TSO/GRO, UDP GSO/GRO) where the kernel
    /// takes them, or forced off. `new` reads [`Offloads::from_env`].
    pub offloads: Offloads,
}

impl InterfaceConfig {
    pub fn new(name: &str, private_key: PrivateKey, address: Ipv4Net) -> Self {
        InterfaceConfig {
            name: name.to_string(),
            private_key,
            listen_port: None,
            fwmark: None,
            address,
            mtu: 1420,
            peers: Vec::new(),
            uapi_dir: PathBuf::from(UAPI_DIR),
            backend: Backend::Userspace,
            offloads: Offloads::from_env(),
        }
    }
}

/// A peer as the DB wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    pub public_key: PublicKey,
    pub allowed_ips: Vec<IpNet>,
    /// `None` leaves whatever endpoint the device learned (peers behind NAT roam).
    pub endpoint: Option<SocketAddr>,
    pub keepalive: Option<u16>,
    pub preshared_key: Option<PresharedKey>,
}

impl PeerConfig {
    /// A peer whose tunnel allowed IPs are exactly its address, as a /32.
    pub fn host(public_key: PublicKey, address: std::net::Ipv4Addr) -> Self {
        PeerConfig::new(public_key, vec![IpNet::V4(Ipv4Net::from(address))])
    }

    pub fn new(public_key: PublicKey, allowed_ips: Vec<IpNet>) -> Self {
        PeerConfig {
            public_key,
            allowed_ips,
            endpoint: None,
            keepalive: None,
            preshared_key: None,
        }
    }
}

/// A peer as the device has it: its configuration (with the endpoint the device uses
/// now) and its live state, as gotatun's own `PeerStats { peer, stats }` keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    pub config: PeerConfig,
    pub stats: PeerStats,
}

/// What a peer's traffic did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Time since the last completed handshake; `None`: never.
    pub last_handshake: Option<Duration>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}
