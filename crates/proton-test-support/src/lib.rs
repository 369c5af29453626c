//! Proton's test helpers, one crate instead of a helper module copied into every test
//! binary (each used part of it, so each needed `#![allow(dead_code)]`). A
//! dev-dependency only; nothing here ships.
//!
//! - [`netns`]: network namespaces that clean up after themselves, code run inside one,
//!   a wireguard-go process.
//! - [`lab`]: a lab built through the real `proton` binary ([`lab::LabGuard`]).
//! - [`cli`]: the binary on a temp root, without a network.
//! - [`k3s_gw`]: a gateway under a temp root whose K3s installer is a fixture.
//! - [`kube_api`]: a stand-in Kubernetes API server (mutual TLS).
//! - [`schema`]: CRD and chart-values schema checks.
//!
//! The `proton` binary's path exists only at compile time of the `proton` crate's own
//! tests (`env!("CARGO_BIN_EXE_proton")`), so the helpers that run it take it as an
//! argument.

pub mod cli;
pub mod k3s_gw;
pub mod kube_api;
pub mod lab;
pub mod netns;
pub mod schema;
