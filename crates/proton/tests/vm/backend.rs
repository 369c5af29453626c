//! Inside the VM: proton-wg's kernel backend driven directly, the way the userspace one
//! is in `crates/proton-wg/tests/userspace.rs`. The gateway side is the VM's own
//! namespace; the peer is kernel WireGuard set up with `wg` in namespace `bp`.

use crate::net::*;
use proton_core::keys::PrivateKey;
use proton_core::wgconf::{PeerSection, WgQuickConfig};
use proton_wg::{Backend, Device, InterfaceConfig, PeerConfig, PeerStatus};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const IFACE: &str = "wgk";
const NS: &str = "bp";

fn config(gw: &PrivateKey, peers: Vec<PeerConfig>) -> InterfaceConfig {
    let mut cfg = InterfaceConfig::new(IFACE, gw.clone(), "10.99.0.1/24".parse().unwrap());
    cfg.listen_port = Some(51820);
    cfg.fwmark = Some(0x4000);
    cfg.backend = Backend::Kernel;
    cfg.peers = peers;
    cfg
}

fn find(peers: &[PeerStatus], key: &PrivateKey) -> PeerStatus {
    peers
        .iter()
        .find(|p| p.config.public_key == key.public_key())
        .cloned()
        .expect("peer on the device")
}

/// The peer's side: kernel WireGuard in `bp` pointing at the gateway.
fn peer_setconf(peer: &PrivateKey, gw: &PrivateKey) -> String {
    let mut conf = WgQuickConfig::default();
    conf.interface.private_key = Some(peer.clone());
    let mut p = PeerSection::new(gw.public_key());
    p.allowed_ips = vec!["10.99.0.0/24".parse().unwrap()];
    p.endpoint = Some("192.0.2.1:51820".parse().unwrap());
    p.persistent_keepalive = Some(25);
    conf.peers.push(p);
    conf.render_wg_setconf().to_string()
}

fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

pub async fn scenario() {
    let _net = Pair::new(None, NS);
    let gw = PrivateKey::generate();
    let dev = Device::up(config(&gw, Vec::new())).await.unwrap();
    assert_eq!(dev.backend(), Backend::Kernel);
    assert_eq!(dev.listen_port().await, 51820);
    let addr = ok(None, &["ip", "-o", "addr", "show", "dev", IFACE]);
    assert!(addr.contains("inet 10.99.0.1/24"), "address: {addr}");
    let link = ok(None, &["ip", "-d", "-o", "link", "show", IFACE]);
    assert!(
        link.contains("mtu 1420") && link.contains(",UP") && link.contains("wireguard"),
        "a kernel wireguard link, MTU 1420, up: {link}"
    );
    let (head, peers) = wg_dump(None, IFACE);
    assert_eq!(head[1], gw.public_key().to_base64(), "{head:?}");
    assert_eq!((head[2].as_str(), head[3].as_str()), ("51820", "0x4000"));
    assert!(peers.is_empty(), "a gateway starts with no peers");
    println!("kernel backend: interface up with key, port 51820, fwmark 0x4000, 10.99.0.1/24");

    // The first peer arrives after the interface is up.
    let peer = PrivateKey::generate();
    kernel_peer(NS, "wgp", &peer_setconf(&peer, &gw), "10.99.0.2/24", 1420);
    let live = PeerConfig::host(peer.public_key(), "10.99.0.2".parse().unwrap());
    let applied = dev.reconcile(std::slice::from_ref(&live)).await.unwrap();
    assert_eq!((applied.added, applied.updated, applied.removed), (1, 0, 0));
    ping(Some(NS), "10.99.0.1");
    ping(None, "10.99.0.2");
    println!("kernel backend: handshake and ping both ways");

    // Stats through the backend agree with `wg show` (read after, so counters >=).
    let st = find(&dev.try_peers().await.unwrap(), &peer);
    let line = wg_peer(None, IFACE, &peer.public_key().to_base64());
    let (hs, rx, tx) = hs_rx_tx(&line);
    let age = st
        .stats
        .last_handshake
        .expect("a handshake through the backend");
    let at = now().saturating_sub(age).as_secs();
    assert!(at.abs_diff(hs) <= 2, "handshake: backend {at}, wg {hs}");
    assert!(st.stats.rx_bytes > 0 && st.stats.tx_bytes > 0, "{st:?}");
    assert!(
        rx >= st.stats.rx_bytes && tx >= st.stats.tx_bytes,
        "{st:?} vs {line:?}"
    );
    let ep = st.config.endpoint.expect("learned endpoint");
    assert_eq!(ep.ip().to_string(), "192.0.2.2");
    assert_eq!(line[2], ep.to_string(), "same endpoint in wg show");
    assert_eq!(line[3], "10.99.0.2/32");
    assert_eq!(st.config.allowed_ips, live.allowed_ips);
    assert_eq!((line[1].as_str(), line[7].as_str()), ("(none)", "off"));
    println!(
        "kernel backend: stats read back: handshake {age:?} ago, rx {} tx {} (wg show: rx {rx} tx {tx})",
        st.stats.rx_bytes, st.stats.tx_bytes
    );

    // 100 peers come and go while the live one pings.
    let before = (hs, rx, tx);
    let pinger = Pinger::start(NS, "10.99.0.1");
    ping(None, "10.99.0.2");
    let others: Vec<PeerConfig> = (0..100)
        .map(|i| {
            PeerConfig::host(
                PrivateKey::generate().public_key(),
                format!("10.98.{}.{}", i / 200, i % 200 + 1)
                    .parse()
                    .unwrap(),
            )
        })
        .collect();
    // 60 in one go (several netlink messages), then two rounds of 20.
    for upto in [60, 80, 100] {
        let mut desired = vec![live.clone()];
        desired.extend(others[..upto].iter().cloned());
        let applied = dev.reconcile(&desired).await.unwrap();
        assert_eq!(applied.removed + applied.updated, 0);
        assert_eq!(applied.added, if upto == 60 { 60 } else { 20 });
    }
    assert_eq!(dev.try_peers().await.unwrap().len(), 101);
    let (_, all) = wg_dump(None, IFACE);
    assert_eq!(all.len(), 101, "wg show sees 101 peers");
    let last = all
        .iter()
        .find(|p| p[0] == others[99].public_key.to_base64())
        .expect("the 100th peer in wg show");
    assert_eq!(last[3], "10.98.0.100/32");
    let applied = dev.reconcile(std::slice::from_ref(&live)).await.unwrap();
    assert_eq!(
        (applied.added, applied.updated, applied.removed),
        (0, 0, 100)
    );
    assert_eq!(wg_dump(None, IFACE).1.len(), 1);
    // An in-place update of the live peer (keepalive) keeps its session.
    let mut changed = live.clone();
    changed.keepalive = Some(15);
    let applied = dev.reconcile(std::slice::from_ref(&changed)).await.unwrap();
    assert_eq!((applied.added, applied.updated, applied.removed), (0, 1, 0));
    ping(None, "10.99.0.2");
    let (answered, lost) = pinger.stop();
    assert_eq!(
        lost, 0,
        "pings lost while peers changed ({answered} answered)"
    );
    assert!(answered > 0);
    let line = wg_peer(None, IFACE, &peer.public_key().to_base64());
    assert_session_kept(before, hs_rx_tx(&line), "live peer during 100 adds/removes");
    assert_eq!(line[7], "15", "keepalive updated in place");
    assert_eq!(
        line[2],
        ep.to_string(),
        "an update without endpoint keeps the learned one"
    );
    println!(
        "kernel backend: 100 peers added and removed live, {answered} pings answered, 0 lost, session kept"
    );

    // Wider allowed IPs take effect in place: the gateway routes the new address.
    ok(
        Some(NS),
        &["ip", "addr", "add", "10.99.0.3/32", "dev", "wgp"],
    );
    let before = hs_rx_tx(&line);
    let mut changed = changed;
    changed.allowed_ips.push("10.99.0.3/32".parse().unwrap());
    let applied = dev.reconcile(std::slice::from_ref(&changed)).await.unwrap();
    assert_eq!((applied.added, applied.updated, applied.removed), (0, 1, 0));
    ping(None, "10.99.0.3");
    let line = wg_peer(None, IFACE, &peer.public_key().to_base64());
    let mut ips: Vec<&str> = line[3].split(',').collect();
    ips.sort();
    assert_eq!(ips, ["10.99.0.2/32", "10.99.0.3/32"]);
    assert_session_kept(
        before,
        hs_rx_tx(&line),
        "live peer across an allowed-IPs update",
    );
    println!("kernel backend: allowed IPs widened in place, new address routed, session kept");

    // A restarted daemon adopts the link: peers it no longer wants go, the live one
    // keeps its session, the address is already there.
    let stray = PrivateKey::generate().public_key().to_base64();
    ok(
        None,
        &[
            "wg",
            "set",
            IFACE,
            "peer",
            &stray,
            "allowed-ips",
            "10.99.0.77/32",
        ],
    );
    let before = hs_rx_tx(&line);
    drop(dev);
    let dev = Device::up(config(&gw, vec![changed.clone()]))
        .await
        .unwrap();
    assert_eq!(dev.backend(), Backend::Kernel);
    let (_, peers) = wg_dump(None, IFACE);
    assert_eq!(peers.len(), 1, "the stray peer was removed: {peers:?}");
    assert_eq!(peers[0][0], peer.public_key().to_base64());
    ping(Some(NS), "10.99.0.1");
    let line = wg_peer(None, IFACE, &peer.public_key().to_base64());
    assert_session_kept(
        before,
        hs_rx_tx(&line),
        "live peer across an adopting restart",
    );
    println!("kernel backend: restart adopted the link, stray peer removed, session kept");

    // A new private key reaches the kernel.
    let rekeyed = PrivateKey::generate();
    dev.set_private_key(&rekeyed).await.unwrap();
    let (head, _) = wg_dump(None, IFACE);
    assert_eq!(head[1], rekeyed.public_key().to_base64());

    dev.down().await;
    assert!(
        !run(None, &["ip", "link", "show", IFACE]).status.success(),
        "down removes the link"
    );
}
