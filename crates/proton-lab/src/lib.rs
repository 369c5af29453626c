//! The lab: Proton's whole topology in network namespaces on one Linux machine (root).
//!
//! ```text
//!   <lab>-c1 ... (clients: phones on a mobile network, public addresses)
//!        \
//!   <lab>-inet  (the "internet": a bridge)  ---- <lab>-gw   (gateway, public 198.18.X.1)
//!        |
//!   <lab>-nat   (home router: 198.18.X.2 outside, masquerade; 192.168.X.1 inside)
//!        |
//!   <lab>-w1 ... (workers: private 192.168.X.1N, no route but through the NAT)
//! ```
//!
//! Namespaces share one filesystem, so every node command runs in a private mount
//! namespace where `/run/wireguard` is that node's own directory (UAPI sockets never
//! collide, and `wg show` in a node sees that node's interfaces), and each node has its
//! own state root under `/run/proton-lab/<lab>/<node>/` for `proton --root`.
//! Everything the lab makes is recorded in `state.json`; `down` removes exactly that.
//! `Lab::destroy_node` and `Lab::add_node` lose a machine and put a new one (a new
//! namespace, another address) in its place.
#![deny(unsafe_code)]

pub mod scenario;
mod topology;

pub use topology::{Lab, LabConfig, LabError, Node, Role, Side};
