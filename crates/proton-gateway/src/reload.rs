//! Applying an edited spec to a running daemon (`proton apply`, or `SIGHUP`), without a
//! restart where the device can stay as it is.
//!
//! What the daemon uses the spec for, and what a change needs:
//! - `network.persistent_keepalive`: set on every peer by the next reconcile (live);
//! - what the join API answers (MTU, keepalive, DNS, K3s join data) and the K3s
//!   settings it mints tokens with: the new values from the next redeem on (live);
//! - the device itself (`network.cidr`, `network.interface`, `network.backend`,
//!   `network.fwmark`, `network.mtu`, and the listen port in `gateway.endpoint`): a new
//!   device, so a restart; the daemon keeps running with the old values and says so.

use proton_core::spec::Spec;

use proton_proto::admin::Reloaded;

/// Compares the spec the daemon runs with to the one on disk.
pub fn compare(running: &Spec, new: &Spec) -> Reloaded {
    let mut out = Reloaded::default();
    let (a, b) = (&running.network, &new.network);
    let mut restart = |changed: bool, key: &str| {
        if changed {
            out.need_restart.push(key.to_string());
        }
    };
    restart(a.cidr != b.cidr, "network.cidr");
    restart(a.interface != b.interface, "network.interface");
    restart(a.backend != b.backend, "network.backend");
    restart(a.fwmark != b.fwmark, "network.fwmark");
    restart(a.mtu != b.mtu, "network.mtu");
    restart(
        running.listen_port() != new.listen_port(),
        "gateway.endpoint (port)",
    );
    if a.persistent_keepalive != b.persistent_keepalive {
        out.applied.push("network.persistent_keepalive".into());
    }
    if a.dns != b.dns {
        out.applied.push("network.dns".into());
    }
    if running.gateway.endpoint != new.gateway.endpoint && out.need_restart.is_empty() {
        out.applied.push("gateway.endpoint".into());
    }
    if running.k3s != new.k3s {
        out.applied.push("k3s".into());
    }
    out
}

/// The spec the daemon should use after a reload: the new one, but with the keys that
/// need a new device kept as the device has them.
pub fn merge(running: &Spec, new: &Spec) -> Spec {
    let mut merged = new.clone();
    merged.network.cidr = running.network.cidr;
    merged.network.interface = running.network.interface.clone();
    merged.network.backend = running.network.backend;
    merged.network.fwmark = running.network.fwmark;
    merged.network.mtu = running.network.mtu;
    if running.listen_port() != new.listen_port() {
        merged.gateway.endpoint = running.gateway.endpoint.clone();
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec::new("vps.example.com".parse().unwrap())
    }

    #[test]
    fn keepalive_is_live_and_the_device_keys_need_a_restart() {
        let running = spec();
        let mut new = running.clone();
        new.network.persistent_keepalive = 5;
        new.network.mtu = 1380;
        let r = compare(&running, &new);
        assert_eq!(r.applied, ["network.persistent_keepalive"]);
        assert_eq!(r.need_restart, ["network.mtu"]);
        let merged = merge(&running, &new);
        assert_eq!(merged.network.persistent_keepalive, 5);
        assert_eq!(merged.network.mtu, running.network.mtu, "the device's MTU");
        assert_eq!(compare(&running, &running), Reloaded::default());
    }
}
