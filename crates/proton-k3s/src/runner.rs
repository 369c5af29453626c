//! Host commands run through [`proton_core::host`]'s runners; re-exported here so
//! `proton_k3s::{Runner, SystemRunner, …}` keeps naming the same types.

pub use proton_core::host::{Invocation, Output, RecordingRunner, Runner, SystemRunner};
