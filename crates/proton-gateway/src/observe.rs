//! What the gateway knows about its own health: the live status it reports over the
//! admin socket (`proton status`, `proton doctor`) and the counters behind the metrics.
//!
//! WireGuard only tells us when the last *handshake* happened, and a healthy idle peer
//! re-handshakes only every two minutes — keepalives do not handshake. So "is this peer
//! still there?" is answered from its receive counter instead: the daemon samples the
//! device and remembers when each peer's `rx_bytes` last moved ("last heard"). A peer
//! with persistent keepalive is heard at least every keepalive interval; silence for
//! three intervals means its packets no longer arrive (NAT mapping gone, link cut,
//! port blocked).

use proton_core::keys::PublicKey;
use proton_proto::admin::{Counters, DataPath, GatewayStatus, PeerLive};
use proton_wg::PeerStatus;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The daemon's memory of what it observed: last-heard times and counters.
#[derive(Default)]
pub struct Observer {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Per peer: the receive counter last seen, and when it last moved.
    heard: HashMap<PublicKey, (u64, Option<Instant>)>,
    counters: Counters,
}

impl Observer {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a sample of the device's peers; returns each peer's last-heard age.
    pub fn sample(&self, peers: &[PeerStatus]) -> Vec<Option<Duration>> {
        self.sample_at(peers, Instant::now())
    }

    fn sample_at(&self, peers: &[PeerStatus], now: Instant) -> Vec<Option<Duration>> {
        let mut inner = self.lock();
        inner
            .heard
            .retain(|k, _| peers.iter().any(|p| p.config.public_key == *k));
        peers
            .iter()
            .map(|p| {
                let entry = inner.heard.entry(p.config.public_key).or_insert_with(|| {
                    // First sight: the last handshake is the latest moment we know it
                    // was heard (a handshake is a received packet).
                    let at = p
                        .stats
                        .last_handshake
                        .filter(|_| p.stats.rx_bytes > 0)
                        .and_then(|age| now.checked_sub(age));
                    (p.stats.rx_bytes, at)
                });
                if p.stats.rx_bytes != entry.0 {
                    *entry = (p.stats.rx_bytes, Some(now));
                }
                entry.1.map(|at| now.saturating_duration_since(at))
            })
            .collect()
    }

    pub fn join_succeeded(&self) {
        self.lock().counters.joins += 1;
    }

    pub fn join_failed(&self) {
        self.lock().counters.failed_joins += 1;
    }

    pub fn reconciled(&self, took: Duration) {
        let mut inner = self.lock();
        inner.counters.reconciles += 1;
        inner.counters.reconcile_seconds_sum += took.as_secs_f64();
        inner.counters.last_reconcile_seconds = took.as_secs_f64();
    }

    pub fn counters(&self) -> Counters {
        self.lock().counters.clone()
    }
}

/// Samples the device: live peers joined with their DB names and last-heard ages.
/// `store`: the state DB if it can be read (without it, peers have no names);
/// `keepalive_secs`: the keepalive in use now (live reloads change it).
pub(crate) async fn gateway_status(
    device: &proton_wg::Device,
    observer: &Observer,
    store: Option<proton_store::Store>,
    spec: &proton_core::spec::Spec,
    keepalive_secs: u16,
) -> GatewayStatus {
    use proton_store::{Grant, Peer, PeerState};
    // One read of every peer, not one query per live peer (10,000 peers: seconds).
    let known: HashMap<PublicKey, Peer> = store
        .as_ref()
        .and_then(|s| s.list_peers(false).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.public_key, p))
        .collect();
    let live = device.peers().await;
    let heard = observer.sample(&live);
    let admins = store
        .as_ref()
        .and_then(|s| s.granted_addresses(Grant::Admin).ok())
        .unwrap_or_default();
    let allows = store
        .as_ref()
        .and_then(|s| s.allows_by_name().ok())
        .unwrap_or_default();
    let peers = live
        .into_iter()
        .zip(heard)
        .map(|(p, heard)| {
            let known = known.get(&p.config.public_key);
            PeerLive {
                name: known.map(|k| k.name.clone()),
                role: known.map(|k| k.role),
                public_key: p.config.public_key,
                allowed_ips: p.config.allowed_ips,
                endpoint: p.config.endpoint,
                last_handshake_secs: p.stats.last_handshake.map(|d| d.as_secs()),
                last_heard_secs: heard.map(|d| d.as_secs()),
                rx_bytes: p.stats.rx_bytes,
                tx_bytes: p.stats.tx_bytes,
                reach: known.as_ref().map(|k| {
                    proton_k3s::firewall::reach(
                        k.role.as_str(),
                        k.state == PeerState::Invited,
                        admins.contains(&k.address),
                        &allows
                            .get(k.name.as_str())
                            .map(|a| a.iter().map(ToString::to_string).collect::<Vec<_>>())
                            .unwrap_or_default(),
                    )
                }),
            }
        })
        .collect();
    GatewayStatus {
        interface: device.name().to_string(),
        backend: device.backend().to_string(),
        listen_port: device.listen_port().await,
        address: spec.network.cidr.with_host(spec.gateway_address()),
        keepalive_secs,
        peers,
        counters: observer.counters(),
        datapath: device.datapath_stats().map(DataPath::from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proton_core::keys::PrivateKey;
    use proton_proto::admin::{Liveness, stale_after};

    fn peer(key: PublicKey, rx: u64, hs: Option<u64>) -> PeerStatus {
        PeerStatus {
            config: proton_wg::PeerConfig {
                keepalive: Some(25),
                ..proton_wg::PeerConfig::new(key, vec![])
            },
            stats: proton_wg::PeerStats {
                last_handshake: hs.map(Duration::from_secs),
                rx_bytes: rx,
                tx_bytes: 0,
            },
        }
    }

    #[test]
    fn last_heard_follows_the_receive_counter_not_the_handshake() {
        let obs = Observer::default();
        let key = PrivateKey::generate().public_key();
        let t0 = Instant::now();
        // First sight: heard at the handshake, 10 s ago.
        let a = obs.sample_at(&[peer(key, 100, Some(10))], t0);
        assert_eq!(a, vec![Some(Duration::from_secs(10))]);
        // Keepalives keep arriving: heard now, although the handshake is older.
        let b = obs.sample_at(&[peer(key, 132, Some(40))], t0 + Duration::from_secs(30));
        assert_eq!(b, vec![Some(Duration::ZERO)]);
        // The link is cut: the counter stops, the age grows.
        let c = obs.sample_at(&[peer(key, 132, Some(140))], t0 + Duration::from_secs(130));
        assert_eq!(c, vec![Some(Duration::from_secs(100))]);
        assert_eq!(
            Liveness::of(Some(140), Some(100), stale_after(25)),
            Liveness::Stale
        );
        // A peer that never handshook was never heard.
        let other = PrivateKey::generate().public_key();
        let d = obs.sample_at(&[peer(other, 0, None)], t0 + Duration::from_secs(131));
        assert_eq!(d, vec![None]);
        assert_eq!(Liveness::of(None, None, stale_after(25)), Liveness::Never);
    }
}
