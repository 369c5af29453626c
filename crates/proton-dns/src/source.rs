//! Where the names come from, live: the store's peers (re-read when its change counter
//! moves) and the VPN-only hosts of K3s's auto-deploy files (re-read when a file
//! changes), so a peer added, renamed or removed, or a service exposed, is answered
//! without a restart.

use crate::answer::Names;
use proton_core::host::Root;
use proton_core::net::Cidr;
use proton_store::{PeerState, Store};
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// The manifests' state that decides whether they are read again.
type DirStamp = Vec<(String, Option<SystemTime>, u64)>;

struct Cache {
    store: Option<Store>,
    generation: Option<u64>,
    stamp: DirStamp,
    names: Arc<Names>,
    /// When an expiry last mattered: an expired peer leaves without a generation change.
    next_expiry: Option<i64>,
}

/// Reads [`Names`] for each query, from a cache that is refreshed only when something
/// changed.
pub struct Source {
    root: Root,
    cidr: Cidr,
    zone: String,
    gateway: Ipv4Addr,
    cache: Mutex<Option<Cache>>,
}

impl Source {
    pub fn new(root: Root, cidr: Cidr, zone: &str, gateway: Ipv4Addr) -> Source {
        Source {
            root,
            cidr,
            zone: zone.trim_end_matches('.').to_ascii_lowercase(),
            gateway,
            cache: Mutex::new(None),
        }
    }

    fn manifests_stamp(&self) -> DirStamp {
        let dir = self.root.path(proton_addons::MANIFESTS_DIR);
        let mut out: DirStamp = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                if !(name.starts_with("proton-") && name.ends_with(".yaml")) {
                    return None;
                }
                let meta = e.metadata().ok();
                Some((
                    name,
                    meta.as_ref().and_then(|m| m.modified().ok()),
                    meta.map(|m| m.len()).unwrap_or(0),
                ))
            })
            .collect();
        out.sort();
        out
    }

    fn vpn_hosts(&self, stamp: &DirStamp) -> HashSet<String> {
        let dir = self.root.path(proton_addons::MANIFESTS_DIR);
        stamp
            .iter()
            .filter_map(|(name, _, _)| std::fs::read_to_string(dir.join(name)).ok())
            .flat_map(|yaml| proton_addons::vpn_only_hosts(&yaml))
            .collect()
    }

    fn peers(&self, store: &Store, now: i64) -> HashMap<String, Ipv4Addr> {
        store
            .list_peers(false)
            .map(|peers| {
                peers
                    .into_iter()
                    .filter(|p| {
                        p.state == PeerState::Active && p.disabled_at.is_none() && !p.expired(now)
                    })
                    .map(|p| (p.name.as_str().to_string(), p.address))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The names as of now.
    pub fn names(&self) -> Arc<Names> {
        let now = proton_store::system_now();
        let mut guard = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let cache = guard.get_or_insert_with(|| Cache {
            store: None,
            generation: None,
            stamp: Vec::new(),
            names: Arc::new(Names {
                zone: String::new(),
                peers: HashMap::new(),
                vpn_hosts: HashSet::new(),
                gateway: self.gateway,
            }),
            next_expiry: None,
        });
        if cache.store.is_none() {
            cache.store = Store::open_existing(&self.root, &self.cidr).ok();
            cache.generation = None;
        }
        let generation = cache.store.as_ref().and_then(|s| s.generation().ok());
        if generation.is_none() {
            cache.store = None;
        }
        let stamp = self.manifests_stamp();
        let expired = cache.next_expiry.is_some_and(|t| t <= now);
        let fresh = !cache.names.zone.is_empty()
            && generation.is_some()
            && generation == cache.generation
            && stamp == cache.stamp
            && !expired;
        if fresh {
            return cache.names.clone();
        }
        let (peers, next_expiry) = match &cache.store {
            Some(s) => (self.peers(s, now), s.next_expiry(now).ok().flatten()),
            None => (HashMap::new(), None),
        };
        let names = Arc::new(Names {
            zone: self.zone.clone(),
            peers,
            vpn_hosts: self.vpn_hosts(&stamp),
            gateway: self.gateway,
        });
        cache.generation = generation;
        cache.stamp = stamp;
        cache.next_expiry = next_expiry;
        cache.names = names.clone();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proton_core::keys::PrivateKey;
    use proton_store::Role;

    #[test]
    fn peers_and_vpn_only_hosts_show_up_live() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let cidr: Cidr = "10.7.7.0/24".parse().unwrap();
        let (mut store, _) =
            Store::create(&root, &cidr, "proton", PrivateKey::generate().public_key()).unwrap();
        let source = Source::new(root.clone(), cidr, "Proton.Internal.", cidr.gateway());
        let first = source.names();
        assert_eq!(first.zone, "proton.internal");
        assert_eq!(first.peers["proton"], Ipv4Addr::new(10, 7, 7, 1));
        assert!(!first.peers.contains_key("w1"));

        let w1 = |s: &mut Store| {
            s.add_peer(
                &"w1".parse().unwrap(),
                Role::Worker,
                PrivateKey::generate().public_key(),
                "t",
            )
            .unwrap()
        };
        let p = w1(&mut store);
        assert_eq!(source.names().peers["w1"], p.address, "an added peer");
        store
            .rename_peer("w1", &"w2".parse().unwrap(), "t")
            .unwrap();
        let names = source.names();
        assert!(
            !names.peers.contains_key("w1") && names.peers["w2"] == p.address,
            "a rename"
        );
        store.set_disabled("w2", true, "t").unwrap();
        assert!(!source.names().peers.contains_key("w2"), "a disabled peer");
        store.set_disabled("w2", false, "t").unwrap();
        store.remove_peer("w2", "t").unwrap();
        assert!(!source.names().peers.contains_key("w2"), "a removed peer");

        // `proton expose --vpn-only` writes a file; its host appears, and goes with --remove.
        let file = proton_addons::expose_manifest(
            "grafana",
            "grafana.example.org",
            "mon/grafana:80",
            true,
            "letsencrypt-prod",
        )
        .unwrap();
        let path = format!("{}/{}", proton_addons::MANIFESTS_DIR, file.name);
        root.write(&path, file.yaml.as_bytes(), 0o600).unwrap();
        assert!(source.names().vpn_hosts.contains("grafana.example.org"));
        let gone = proton_addons::unexpose_manifest("grafana").unwrap();
        root.write(&path, gone.yaml.as_bytes(), 0o600).unwrap();
        assert!(source.names().vpn_hosts.is_empty());
    }
}
