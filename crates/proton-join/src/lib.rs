//! The worker side of Proton: [`join()`] redeems an invitation and makes the tunnel
//! permanent (then joins K3s when the gateway offers it), [`agent::Agent`] is
//! `proton agent`, the userspace tunnel that keeps running.
//!
//! The binary reads the invitation, maps its arguments to [`JoinOptions`] and prints the
//! [`Progress`] it is told and the [`JoinError`] it gets (each with a [`JoinError::hint`]).
//! The gateway is only reached through `proton_proto::join`; nothing of the gateway's
//! internals is used here.
//!
//! Files a joined worker holds:
//! - [`NODE_KEY`]: its own WireGuard key;
//! - the tunnel: `/etc/wireguard/<iface>.conf` for wg-quick (kernel WireGuard), or
//!   [`AGENT_CONF`] for `proton agent`. The interface name is the file's name for
//!   wg-quick; `agent.conf` records it in a `# Proton-Interface = <iface>` line above
//!   `[Interface]` (see [`agent::AgentConf`]), so `proton agent` brings up the interface
//!   the join was made with, the one K3s's `flannel-iface` names.

pub mod agent;
mod error;
mod join;
pub mod k3s;
pub mod keys;
mod progress;
mod resolve;
pub mod units;

pub use error::JoinError;
pub use join::{JoinOptions, Joined, K3sOptions, Progress, Tunnel, TunnelKind, join};
pub use resolve::{ResolveError, resolve};

pub use proton_core::paths::{AGENT_CONF, NODE_KEY};
pub use proton_core::wgconf::DEFAULT_INTERFACE;
