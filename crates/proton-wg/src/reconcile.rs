//! Desired peers (from the DB) against actual peers (from the device): the minimal set
//! of changes. A peer whose every desired field already matches is left alone, so its
//! session, handshake time and counters survive every unrelated change.

use crate::{PeerConfig, PeerStatus};
use std::collections::{BTreeSet, HashMap};

/// One change to the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerChange {
    Add(PeerConfig),
    /// Set the differing fields of an existing peer, in place (no reset).
    Update(PeerConfig),
    Remove(proton_core::keys::PublicKey),
}

/// Whether the device's peer `actual` already is what `desired` asks for.
fn same(desired: &PeerConfig, actual: &PeerConfig) -> bool {
    let want: BTreeSet<_> = desired.allowed_ips.iter().collect();
    let have: BTreeSet<_> = actual.allowed_ips.iter().collect();
    want == have
        && desired.keepalive.unwrap_or(0) == actual.keepalive.unwrap_or(0)
        && desired.preshared_key == actual.preshared_key
        // An unspecified endpoint never clobbers a learned one.
        && (desired.endpoint.is_none() || desired.endpoint == actual.endpoint)
}

/// The changes that turn `actual` into `desired`: removals first (so an address that
/// moves between keys is free when the new key claims it), then updates, then adds.
pub fn plan(desired: &[PeerConfig], actual: &[PeerStatus]) -> Vec<PeerChange> {
    let have: HashMap<_, _> = actual.iter().map(|p| (p.config.public_key, p)).collect();
    let want: HashMap<_, _> = desired.iter().map(|p| (p.public_key, p)).collect();
    let mut removes: Vec<_> = actual
        .iter()
        .filter(|a| !want.contains_key(&a.config.public_key))
        .map(|a| PeerChange::Remove(a.config.public_key))
        .collect();
    let mut updates = Vec::new();
    let mut adds = Vec::new();
    for d in desired {
        match have.get(&d.public_key) {
            None => adds.push(PeerChange::Add(d.clone())),
            Some(a) if !same(d, &a.config) => updates.push(PeerChange::Update(d.clone())),
            Some(_) => {}
        }
    }
    removes.append(&mut updates);
    removes.append(&mut adds);
    removes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PeerStats;
    use proptest::prelude::*;
    use proton_core::keys::PublicKey;

    fn status(c: &PeerConfig) -> PeerStatus {
        PeerStatus {
            config: c.clone(),
            stats: PeerStats::default(),
        }
    }

    /// Applies a plan to a model of the device.
    fn apply(actual: &mut Vec<PeerStatus>, changes: &[PeerChange]) {
        for c in changes {
            match c {
                PeerChange::Remove(k) => actual.retain(|p| p.config.public_key != *k),
                PeerChange::Add(p) => actual.push(status(p)),
                PeerChange::Update(p) => {
                    let a = actual
                        .iter_mut()
                        .find(|a| a.config.public_key == p.public_key)
                        .unwrap();
                    a.config.allowed_ips = p.allowed_ips.clone();
                    a.config.keepalive = p.keepalive;
                    a.config.preshared_key = p.preshared_key.clone();
                    if p.endpoint.is_some() {
                        a.config.endpoint = p.endpoint;
                    }
                }
            }
        }
    }

    fn arb_peer() -> impl Strategy<Value = PeerConfig> {
        (0u8..12, 1u8..250, proptest::option::of(1u16..60)).prop_map(|(k, host, keepalive)| {
            let mut key = [0u8; 32];
            key[0] = k;
            PeerConfig {
                keepalive,
                ..PeerConfig::new(
                    PublicKey::from_bytes(key),
                    vec![format!("10.7.7.{host}/32").parse().unwrap()],
                )
            }
        })
    }

    fn dedup(v: Vec<PeerConfig>) -> Vec<PeerConfig> {
        let mut seen = std::collections::HashSet::new();
        v.into_iter()
            .filter(|p| seen.insert(p.public_key))
            .collect()
    }

    proptest! {
        #[test]
        fn applying_the_plan_reaches_desired_and_leaves_matches_alone(
            desired in proptest::collection::vec(arb_peer(), 0..10).prop_map(dedup),
            actual in proptest::collection::vec(arb_peer(), 0..10).prop_map(dedup),
        ) {
            let mut device: Vec<PeerStatus> = actual.iter().map(status).collect();
            let changes = plan(&desired, &device);
            for c in &changes {
                let key = match c { PeerChange::Add(p) | PeerChange::Update(p) => p.public_key, PeerChange::Remove(k) => *k };
                let untouched = desired.iter().any(|d| d.public_key == key)
                    && actual.iter().any(|a| a.public_key == key && same(desired.iter().find(|d| d.public_key == key).unwrap(), a));
                prop_assert!(!untouched, "a matching peer was touched: {:?}", c);
            }
            apply(&mut device, &changes);
            let mut got: Vec<_> = device.iter().map(|p| (p.config.public_key, p.config.allowed_ips.clone(), p.config.keepalive)).collect();
            let mut want: Vec<_> = desired.iter().map(|p| (p.public_key, p.allowed_ips.clone(), p.keepalive)).collect();
            got.sort();
            want.sort();
            prop_assert_eq!(got, want);
            prop_assert!(plan(&desired, &device).is_empty(), "a second plan is empty");
        }
    }

    #[test]
    fn a_learned_endpoint_is_not_clobbered() {
        let mut d = PeerConfig::new(
            PublicKey::from_bytes([1; 32]),
            vec!["10.7.7.2/32".parse().unwrap()],
        );
        let mut a = status(&d);
        a.config.endpoint = Some("192.0.2.7:40000".parse().unwrap());
        assert!(plan(&[d.clone()], &[a.clone()]).is_empty());
        d.endpoint = Some("192.0.2.8:1".parse().unwrap());
        assert_eq!(plan(&[d.clone()], &[a]), vec![PeerChange::Update(d)]);
    }
}
