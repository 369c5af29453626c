//! What an operator sees and is told to do: `proton status` (the gateway's peers with
//! their liveness, a worker's tunnel, the cluster's nodes, add-ons and certificates)
//! and `proton doctor` (each check passes, warns or fails, and every failure comes with
//! its exact fix). Also the endpoint re-resolution that wg-quick never does, and what an
//! operator does to a host: `proton init` ([`init`]), `proton backup`/`restore` ([`backup`]), `proton uninstall`
//! ([`uninstall`]), the retry queue for removed workers' K8s nodes ([`node_cleanup`]) and
//! `proton apply`'s host plan, its journal and its execution ([`apply`]). And the peer
//! inventory a gateway keeps: the DB and spec opened ([`gateway`]), `proton peer`
//! ([`peers`]), `proton client` ([`client`]), `proton invite` ([`invite`]), with their
//! QR codes ([`qr`]); and the cluster's front door: `proton expose` ([`expose`]),
//! `proton kubeconfig` ([`kubeconfig`]), `proton dashboard token` ([`dashboard`]).
//!
//! The CLI only parses arguments and prints; the gathering, the judgement and the
//! rendering live here, split so the judgement can be tested on sample input
//! (`/proc` text, `nft -j` output, `kubectl -o json`) without a host to probe.
#![deny(unsafe_code)]

pub mod apply;
pub mod backup;
pub mod client;
pub mod dashboard;
pub mod doctor;
pub mod expose;
pub mod gateway;
pub mod gateway_key;
pub mod init;
pub mod invite;
pub mod kube;
pub mod kubeconfig;
pub mod nft;
pub mod node_cleanup;
pub mod peers;
pub mod probe;
pub mod qr;
pub mod reresolve;
pub mod status;
pub mod uninstall;
pub mod wgshow;
pub mod worker;

/// Why a view could not be built.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("{0}")]
    Spec(#[from] proton_core::spec::SpecError),
    #[error(transparent)]
    Admin(#[from] proton_proto::admin::AdminError),
    #[error("the gateway daemon answered: {0}")]
    Daemon(String),
    #[error("{path}: {message}")]
    Config { path: String, message: String },
    #[error("running `{command}`: {message}")]
    Command { command: String, message: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Host(#[from] proton_core::host::HostError),
    #[error(
        "this machine is neither a Proton gateway (no {0}) nor a joined worker (no /etc/proton/agent.conf or /etc/wireguard/<iface>.conf)"
    )]
    NotSetUp(String),
}

impl OpsError {
    /// What to do: start the daemon that is not running, set up a machine that is not.
    pub fn hint(&self) -> Option<&str> {
        match self {
            OpsError::Admin(proton_proto::admin::AdminError::NotRunning(_)) => {
                Some("systemctl start proton-gateway  (or: proton gateway run)")
            }
            OpsError::NotSetUp(_) => {
                Some("on the VPS: proton init --endpoint HOST; on a worker: proton join")
            }
            _ => None,
        }
    }
}
