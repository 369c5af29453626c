//! The gateway daemon (`proton gateway run`): owns the WireGuard device, reconciles its
//! peers from the state DB, serves the join API on the tunnel address only, and answers
//! CLI commands on a root-only admin socket.
#![deny(unsafe_code)]

pub mod admin;
pub mod bounded;
pub mod daemon;
pub mod dns;
pub mod endpoints;
pub mod firewall;
pub mod hardening;
pub mod k3s;
pub mod listen;
pub mod metrics;
pub mod observe;
pub mod reload;
pub mod server;
pub mod throttle;
