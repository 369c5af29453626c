//! The lab: Proton's whole topology in network namespaces on one Linux machine (root),
//! used by `proton lab up|status|down` and by the integration tests.
//!
//! ```text
//!   <lab>-c1 …   clients (phones on a mobile network): public 198.18.X.101…
//!        \
//!   <lab>-inet   the "internet": bridge br0 ─── <lab>-gw   gateway, public 198.18.X.1
//!        |
//!   <lab>-nat    home router: wan0 198.18.X.2 (masquerade), lan0 192.168.X.1
//!        |
//!   <lab>-w1 …   workers: private 192.168.X.11…, default route via the router only
//! ```
//!
//! Each lab gets its own X, so parallel labs never share a range. Namespaces share one
//! filesystem, so each node has an *anchor* process holding a private mount namespace
//! whose `/run` is a tmpfs of its own (`/run/wireguard/<iface>.sock` and `/run/proton`
//! never collide; `wg show` in a node sees that node only); every command enters the
//! node with `nsenter --target <anchor> --mount --net`. Each node also has a state root
//! `/run/proton-lab/<lab>/<node>/root` for `proton --root`, the same path inside and out.
//! Everything made is recorded in `/run/proton-lab/<lab>/state.json` as it is made;
//! [`Lab::down`] removes exactly that, also after a half-finished `up`.
//!
//! ```no_run
//! use proton_lab::{Lab, LabConfig, NodeCommand};
//! # fn main() -> Result<(), proton_lab::LabError> {
//! let mut lab = Lab::up(&LabConfig::new("demo", 2, 1), &mut |step| eprintln!("lab: {step}"))?;
//! let gw = lab.gateway_public_ip().to_string();
//! lab.exec_ok("w1", &NodeCommand::new(["ping", "-c1", gw.as_str()]))?;
//! let root = lab.node_root("gw").display().to_string();
//! lab.spawn("gw", "gateway", &NodeCommand::new(["proton", "--root", &root, "gateway", "run"]))?;
//! println!("{}", lab.status());
//! Lab::down("demo")?;
//! # Ok(()) }
//! ```
#![deny(unsafe_code)]

mod error;
mod lab;
mod netfilter;
mod node;
mod procs;
mod state;
mod status;

pub use error::LabError;
pub use lab::{DEFAULT_NAME, Lab, LabConfig, MAX_CLIENTS, MAX_WORKERS};
pub use node::{LAB_ENV, NODE_ENV, NodeCommand};
pub use procs::Signal;
pub use state::{LAB_DIR, Node, ProcId, Process, Role, Uplink, lab_dir};
pub use status::{LabStatus, NodeStatus, ProcessStatus};
