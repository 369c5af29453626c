//! Proton's vocabulary, shared by every other crate.
//!
//! - [`keys`]: WireGuard x25519 key pairs. Private keys are zeroized on drop and never
//!   printed by `Debug`.
//! - [`net`]: the tunnel network ([`net::Cidr`]) and host addresses in it.
//! - [`peer`]: a peer's name and role.
//! - [`host`]: every file Proton writes goes through a [`host::Root`], which takes a root
//!   prefix (so a whole gateway can be rendered into a temp dir) and writes atomically;
//!   secrets are created `0600` from the first byte.
//!
//! ```
//! use proton_core::keys::PrivateKey;
//! let key = PrivateKey::generate();
//! let public = key.public_key();
//! assert_eq!(public.to_base64().len(), 44);
//! ```
#![deny(unsafe_code)]

pub mod backend;
mod clip;
pub mod datapath;
pub mod host;
pub use clip::clip;
pub mod invite;
pub mod keys;
pub mod net;
pub mod paths;
pub mod peer;
pub mod say;
pub mod spec;
pub mod time;
pub mod view;
pub mod wgconf;
