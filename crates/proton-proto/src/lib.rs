//! What Proton's two sides say to each other, in one place both use (innernet's `shared/`):
//!
//! - [`join`]: the join API a worker talks to over the tunnel (wire types and the client);
//! - [`admin`]: the gateway daemon's admin socket (requests, replies, status, the client).
//!
//! The gateway daemon (`proton-gateway`) serves both; the worker (`proton-join`) and the
//! CLI are clients. Neither side imports the other's internals.

pub mod admin;
pub mod join;
