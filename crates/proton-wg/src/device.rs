//! [`Device`]: one WireGuard interface, whichever backend runs it.

use crate::backend::{Backend, detect};
use crate::kernel::Kernel;
use crate::reconcile::{PeerChange, plan};
use crate::userspace::Userspace;
use crate::{InterfaceConfig, PeerConfig, PeerStatus, WgError};
use proton_core::keys::PrivateKey;

/// What one `apply`/`reconcile` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    pub added: usize,
    pub updated: usize,
    pub removed: usize,
}

enum Imp {
    Userspace(Userspace),
    Kernel(Kernel),
}

/// A running WireGuard interface. Keep it (and, for the userspace backend, the tokio
/// runtime it was made on) alive as long as the interface should exist; [`Device::down`]
/// removes the interface and its UAPI socket.
pub struct Device {
    imp: Imp,
}

impl Device {
    /// Brings the interface up with the backend `cfg.backend` resolves to (see
    /// [`crate::detect`]): link, address, MTU, up, key, port, fwmark, initial peers, and
    /// for userspace the UAPI socket `<cfg.uapi_dir>/<cfg.name>.sock`.
    pub async fn up(cfg: InterfaceConfig) -> Result<Device, WgError> {
        let imp = match detect(cfg.backend).await.kind {
            Backend::Kernel => Imp::Kernel(Kernel::up(&cfg).await?),
            _ => Imp::Userspace(Userspace::up(&cfg).await?),
        };
        Ok(Device { imp })
    }

    /// Which backend runs this interface (never `Auto`).
    pub fn backend(&self) -> Backend {
        match &self.imp {
            Imp::Userspace(_) => Backend::Userspace,
            Imp::Kernel(_) => Backend::Kernel,
        }
    }

    pub fn name(&self) -> &str {
        match &self.imp {
            Imp::Userspace(u) => u.name(),
            Imp::Kernel(k) => k.name(),
        }
    }

    /// The userspace data plane's offloads and syscall/packet counters; `None` for the
    /// kernel backend.
    pub fn datapath_stats(&self) -> Option<crate::DataPathStats> {
        match &self.imp {
            Imp::Userspace(u) => Some(u.datapath_stats()),
            Imp::Kernel(_) => None,
        }
    }

    /// The UDP port WireGuard listens on (0 if the kernel could not be read).
    pub async fn listen_port(&self) -> u16 {
        match &self.imp {
            Imp::Userspace(u) => u.listen_port().await,
            Imp::Kernel(k) => k.listen_port().await.unwrap_or_else(|e| {
                tracing::warn!("{e}");
                0
            }),
        }
    }

    /// The peers on the device with endpoint, handshake age and counters. Infallible
    /// for the userspace backend; a kernel read error is logged and yields no peers,
    /// see [`Device::try_peers`].
    pub async fn peers(&self) -> Vec<PeerStatus> {
        self.try_peers().await.unwrap_or_else(|e| {
            tracing::warn!("{e}");
            Vec::new()
        })
    }

    /// The peers, or why the device could not be read.
    pub async fn try_peers(&self) -> Result<Vec<PeerStatus>, WgError> {
        match &self.imp {
            Imp::Userspace(u) => Ok(u.peers().await),
            Imp::Kernel(k) => k.peers().await,
        }
    }

    /// Applies changes in place: an updated peer keeps its session and counters.
    pub async fn apply(&self, changes: &[PeerChange]) -> Result<Applied, WgError> {
        match &self.imp {
            Imp::Userspace(u) => u.apply(changes).await,
            Imp::Kernel(k) => {
                k.apply(changes).await?;
                let mut a = Applied::default();
                for c in changes {
                    match c {
                        PeerChange::Add(_) => a.added += 1,
                        PeerChange::Update(_) => a.updated += 1,
                        PeerChange::Remove(_) => a.removed += 1,
                    }
                }
                Ok(a)
            }
        }
    }

    /// Brings the device's peers in line with `desired`, touching only what differs.
    pub async fn reconcile(&self, desired: &[PeerConfig]) -> Result<Applied, WgError> {
        let actual = self.try_peers().await?;
        self.apply(&plan(desired, &actual)).await
    }

    /// Replaces the private key. Userspace: the UDP socket (and port) is kept.
    pub async fn set_private_key(&self, key: &PrivateKey) -> Result<(), WgError> {
        match &self.imp {
            Imp::Userspace(u) => u.set_private_key(key).await,
            Imp::Kernel(k) => k.set_private_key(key).await,
        }
    }

    /// Removes the interface (and the UAPI socket).
    pub async fn down(self) {
        match self.imp {
            Imp::Userspace(u) => u.down().await,
            Imp::Kernel(k) => {
                let name = k.name().to_string();
                if let Err(e) = k.down().await {
                    tracing::warn!("{e}");
                }
                tracing::info!(iface = %name, "WireGuard interface down");
            }
        }
    }
}
