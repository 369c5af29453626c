//! Remembering where each peer was, across daemon restarts.
//!
//! A userspace device starts with no endpoints: without them the gateway cannot send
//! to a peer until that peer handshakes again (up to keepalive + 15 s for a peer behind
//! NAT). The daemon stores each endpoint the device learns ([`Book::note`], on every
//! sample) and starts the device with them ([`restore`]), so it can initiate at once.

use crate::throttle::Throttle;
use proton_core::host::Root;
use proton_core::keys::PublicKey;
use proton_core::net::Cidr;
use proton_store::Store;
use proton_wg::{PeerConfig, PeerStatus};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Fills in the last known endpoint of each peer (those the DB has one for).
pub fn restore(root: &Root, cidr: &Cidr, peers: &mut [PeerConfig]) {
    let known = match Store::open_existing(root, cidr).and_then(|s| s.last_endpoints()) {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!("could not read the peers' last endpoints: {e}");
            return;
        }
    };
    let mut restored = 0;
    for p in peers.iter_mut() {
        if p.endpoint.is_none()
            && let Some(at) = known.get(&p.public_key)
        {
            p.endpoint = Some(*at);
            restored += 1;
        }
    }
    if restored > 0 {
        tracing::info!(count = restored, "peers start at their last known endpoint");
    }
}

/// The endpoints already stored, so only changes are written.
pub struct Book {
    saved: HashMap<PublicKey, SocketAddr>,
    store: Option<Store>,
    log: Throttle,
}

impl Default for Book {
    fn default() -> Self {
        Book {
            saved: HashMap::new(),
            store: None,
            log: Throttle::new(Duration::from_secs(60)),
        }
    }
}

impl Book {
    /// Stores the endpoints in `live` that changed since the last call.
    pub fn note(&mut self, root: &Root, cidr: &Cidr, live: &[PeerStatus]) {
        let changed: Vec<(PublicKey, SocketAddr)> = live
            .iter()
            .filter_map(|p| Some((p.config.public_key, p.config.endpoint?)))
            .filter(|(k, at)| self.saved.get(k) != Some(at))
            .collect();
        if changed.is_empty() {
            return;
        }
        if self.store.is_none() {
            self.store = Store::open_existing(root, cidr).ok();
        }
        let Some(store) = self.store.as_mut() else {
            return;
        };
        match store.save_endpoints(&changed) {
            Ok(_) => self.saved.extend(changed),
            Err(e) => {
                self.store = None;
                if let Some(suppressed) = self.log.hit() {
                    tracing::warn!(suppressed, "could not store the peers' endpoints: {e}");
                }
            }
        }
    }
}
