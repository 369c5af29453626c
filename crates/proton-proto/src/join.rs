//! The join API: what a worker and the gateway exchange over the tunnel.
