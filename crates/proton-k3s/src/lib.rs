//! The K3s side of Proton: the gateway's K3s server and the workers' agents.
//!
//! - [`config`]: the files (`config.yaml`, `/etc/default/k3s` for `GOGC`, a systemd
//!   drop-in ordering K3s after the tunnel, `KUBECONFIG` profile, `ip_forward` sysctl),
//!   as [`PlannedFile`]s a [`Plan`] can diff (`--dry-run`) or write under a
//!   [`proton_core::host::Root`].
//! - [`install`]: the official install script, version pinned, idempotent.
//! - [`tokens`]: per-node bootstrap tokens, node removal, restart.
//! - [`kubeconfig`]: the admin kubeconfig rewritten to the tunnel address, and merged.
//! - [`api`]: reads from the Kubernetes API with a kubeconfig's credentials (mutual TLS).
//! - [`firewall`]: one nftables table keeping 6443/10250/join API off the public side.
//! - [`gateway`]: the spec → server parameters, firewall files, shared paths and ports.
//!
//! Host commands go through [`proton_core::host::Runner`], so tests record them instead of running them.
//!
//! ```
//! use proton_k3s::{Plan, ServerParams, TunnelUnit, server_files, pod_mtu};
//! let params = ServerParams {
//!     node_name: "proton".into(),
//!     tunnel_ip: "10.7.7.1".parse().unwrap(),
//!     tunnel_cidr: "10.7.7.0/24".into(),
//!     public_ip: Some("203.0.113.7".parse().unwrap()),
//!     public_name: Some("vps.example.org".into()),
//!     interface: "wg0".into(),
//!     wg_mtu: 1420,
//!     disable_traefik: true,
//!     gogc: 10,
//!     version: "v1.33.4+k3s1".into(),
//!     tunnel_unit: TunnelUnit::ProtonGateway,
//!     node_labels: vec![],
//!     extra_args: vec![],
//! };
//! let plan = Plan { files: server_files(&params).unwrap(), commands: vec![] };
//! let root = proton_core::host::Root::new(std::env::temp_dir().join("proton-k3s-doc-nonexistent"));
//! assert!(plan.dry_run(&root).unwrap().contains("+advertise-address: 10.7.7.1"));
//! assert_eq!(pod_mtu(1420), 1370);
//! ```
#![deny(unsafe_code)]

pub mod api;
pub mod config;
pub mod firewall;
pub mod gateway;
pub mod install;
pub mod kubeconfig;
pub mod plan;
pub mod tokens;

pub use config::{
    AgentParams, PlannedFile, ServerParams, TunnelUnit, after_write_commands, agent_files,
    needs_restart, pod_mtu, server_files,
};
pub use firewall::FirewallParams;
pub use install::{InstallOutcome, Installer, Role, ScriptSource};
pub use plan::{Plan, PlannedCommand};
pub use tokens::BootstrapToken;

use std::path::PathBuf;

/// Everything that can go wrong in this crate, one actionable line each.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Host(#[from] proton_core::host::HostError),
    #[error(
        "{field} {value:?} is not a valid name: use letters, digits, `-`, `.`, `_` (at most 63)"
    )]
    InvalidName { field: &'static str, value: String },
    #[error("extra K3s arg `{0}` is set by Proton itself; remove it from the spec's extra args")]
    ExtraArgConflict(String),
    #[error(
        "downloading the K3s install script from {url} failed: {reason} (air-gapped? give a local script path and skip the download)"
    )]
    Download { url: String, reason: String },
    #[error("K3s install script {} not found: download it from https://get.k3s.io onto the host", .0.display())]
    ScriptMissing(PathBuf),
    #[error("could not run the K3s install script: {0}")]
    Spawn(std::io::Error),
    #[error("the K3s install script failed ({status}); its last lines:\n{tail}")]
    InstallFailed { status: String, tail: String },
    #[error("`{command}` failed: {reason}")]
    Command { command: String, reason: String },
    #[error("{what} is not a valid kubeconfig: {reason}")]
    Kubeconfig { what: &'static str, reason: String },
    #[error("firewall: {0}")]
    Firewall(String),
    #[error(
        "no kubeconfig at {}: K3s is not installed on this machine yet (run `proton apply` on the gateway), or pass --kubeconfig FILE", .0.display()
    )]
    KubeconfigMissing(PathBuf),
    #[error("{} is not a usable kubeconfig: {reason}", path.display())]
    KubeconfigInvalid { path: PathBuf, reason: String },
    #[error(
        "cannot reach the Kubernetes API at {server}: {reason} (is K3s running? `systemctl status k3s`)"
    )]
    ApiUnreachable { server: String, reason: String },
    #[error("the Kubernetes API at {server} answered {status} to GET {path}: {message}")]
    ApiStatus {
        server: String,
        path: String,
        status: u16,
        message: String,
    },
    #[error(
        "secret {namespace}/{name} does not exist yet: the dashboard add-on is not applied (is the dashboard enabled in the spec? run `proton apply`)"
    )]
    SecretMissing { namespace: String, name: String },
    #[error(
        "secret {namespace}/{name} has no token yet: Kubernetes fills it in a few seconds after it is created; try again shortly"
    )]
    TokenNotReady { namespace: String, name: String },
}
