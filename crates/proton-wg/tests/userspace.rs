//! The userspace data plane against peers we did not write: `wireguard-go` as the other
//! end (configured with `wg setconf` from a config rendered by proton-core), and `wg`
//! reading our device through its UAPI socket. Root only; each test makes its own
//! namespaces and removes them.

use proton_core::keys::PrivateKey;
use proton_core::wgconf::{PeerSection, WgQuickConfig};
use proton_test_support::netns::*;
use proton_wg::{Device, InterfaceConfig, PeerConfig, PeerStatus};
use std::time::{Duration, Instant};

fn skip() -> bool {
    if !is_root() || !have("wireguard-go") || !have("wg") {
        eprintln!("skipping: needs root, wireguard-go and wireguard-tools");
        return true;
    }
    false
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// Sets up wireguard-go in `ns` as a peer of a gateway at 192.0.2.1:51820.
fn wireguard_go_peer(
    ns: &Netns,
    iface: &str,
    key: &PrivateKey,
    gw: &PrivateKey,
    addr: &str,
) -> WireguardGo {
    let wgo = WireguardGo::start(ns, iface);
    let mut conf = WgQuickConfig::default();
    conf.interface.private_key = Some(key.clone());
    let mut p = PeerSection::new(gw.public_key());
    p.allowed_ips = vec!["10.99.0.0/24".parse().unwrap()];
    p.endpoint = Some("192.0.2.1:51820".parse().unwrap());
    p.persistent_keepalive = Some(25);
    conf.peers.push(p);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peer.conf");
    proton_core::host::write_atomic(&path, conf.render_wg_setconf().as_bytes(), 0o600).unwrap();
    ns.exec(&["wg", "setconf", iface, path.to_str().unwrap()]);
    ns.exec(&["ip", "addr", "add", addr, "dev", iface]);
    ns.exec(&["ip", "link", "set", iface, "up"]);
    wgo
}

fn gateway_config(name: &str, key: &PrivateKey, uapi_dir: &std::path::Path) -> InterfaceConfig {
    let mut cfg = InterfaceConfig::new(name, key.clone(), "10.99.0.1/24".parse().unwrap());
    cfg.listen_port = Some(51820);
    cfg.fwmark = Some(0x4000);
    cfg.uapi_dir = uapi_dir.to_path_buf();
    cfg
}

fn peer_of(key: &PrivateKey, host: u8) -> PeerConfig {
    PeerConfig::new(
        key.public_key(),
        vec![format!("10.99.0.{host}/32").parse().unwrap()],
    )
}

fn find(peers: &[PeerStatus], key: &PrivateKey) -> PeerStatus {
    peers
        .iter()
        .find(|p| p.config.public_key == key.public_key())
        .cloned()
        .expect("peer on the device")
}

#[test]
fn wireguard_go_handshakes_with_a_gateway_that_started_empty_and_wg_reads_it() {
    if skip() {
        return;
    }
    let id = std::process::id();
    let (a, b) = pair("h");
    let uapi = tempfile::tempdir().unwrap();
    let uapi_dir = uapi.path().to_path_buf();
    let b_name = b.0.clone();
    in_netns(&a, move |rt| {
        rt.block_on(async move {
            let b = Netns(b_name);
            let gw = PrivateKey::generate();
            let iface = format!("wgh{id}");
            // The gateway starts with zero peers, as a fresh gateway does.
            let dev = Device::up(gateway_config(&iface, &gw, &uapi_dir)).await.unwrap();
            assert_eq!(dev.listen_port().await, 51820);
            assert_eq!(dev.backend(), proton_wg::Backend::Userspace);
            // Address, MTU and up came from the netlink code shared with the kernel backend.
            let link = std::process::Command::new("ip").args(["-o", "addr", "show", "dev", &iface]).output().unwrap();
            let link = String::from_utf8_lossy(&link.stdout).to_string();
            assert!(link.contains("inet 10.99.0.1/24"), "address set: {link}");
            let mtu = std::process::Command::new("ip").args(["-o", "link", "show", &iface]).output().unwrap();
            let mtu = String::from_utf8_lossy(&mtu.stdout).to_string();
            assert!(mtu.contains("mtu 1420") && mtu.contains(",UP"), "MTU and up: {mtu}");
            let peer = PrivateKey::generate();
            let wgo = wireguard_go_peer(&b, &format!("wgo{id}"), &peer, &gw, "10.99.0.2/24");
            // The first peer arrives later (the gotatun zero-peer trap).
            let applied = dev.reconcile(&[peer_of(&peer, 2)]).await.unwrap();
            assert_eq!(applied.added, 1);

            let out = blocking({
                let b = Netns(b.0.clone());
                move || {
                    let o = b.try_exec(&["ping", "-c", "3", "-w", "20", "10.99.0.1"]);
                    std::mem::forget(b);
                    o
                }
            })
            .await;
            if !out.status.success() {
                let dbg = std::process::Command::new("sh").args(["-c", &format!("ip addr; ip route; ss -ulpn; ip netns exec {} wg show; ip netns exec {} ip addr", b.0, b.0)]).output().unwrap();
                eprintln!("DEBUG {}\n{}", String::from_utf8_lossy(&dbg.stdout), String::from_utf8_lossy(&dbg.stderr));
                eprintln!("OUR PEERS {:?}", dev.peers().await);
            }
            assert!(out.status.success(), "ping through the tunnel: {}", String::from_utf8_lossy(&out.stdout));
            // And the other way: from the gateway's namespace through our TUN.
            let back = blocking(|| std::process::Command::new("ping").args(["-c", "2", "-W", "3", "10.99.0.2"]).output().unwrap()).await;
            assert!(back.status.success(), "gateway -> peer: {}", String::from_utf8_lossy(&back.stdout));

            let st = find(&dev.peers().await, &peer);
            assert!(st.stats.last_handshake.is_some(), "handshake completed");
            assert!(st.stats.rx_bytes > 0 && st.stats.tx_bytes > 0);
            let learned: std::net::IpAddr = "192.0.2.2".parse().unwrap();
            assert_eq!(st.config.endpoint.map(|e| e.ip()), Some(learned), "the peer's endpoint is learned");

            // wg (wireguard-tools) reads our device through the UAPI socket.
            let dir = uapi_dir.clone();
            let dump = blocking(move || wg_with_socket_dir(&dir, &format!("show wgh{id} dump"))).await;
            let lines: Vec<&str> = dump.lines().collect();
            assert_eq!(lines.len(), 2, "interface + one peer: {dump}");
            assert!(lines[0].contains(&gw.public_key().to_base64()), "{dump}");
            assert!(lines[0].contains("51820") && lines[0].contains("0x4000"), "{dump}");
            let fields: Vec<&str> = lines[1].split('\t').collect();
            assert_eq!(fields[0], peer.public_key().to_base64());
            assert!(fields[2].starts_with("192.0.2.2:"), "the peer's endpoint as learned: {dump}");
            assert_eq!(fields[3], "10.99.0.2/32");
            assert_ne!(fields[4], "0", "a handshake time: {dump}");

            drop(wgo);
            let sock = uapi_dir.join(format!("{iface}.sock"));
            assert!(sock.exists());
            dev.down().await;
            assert!(!sock.exists(), "down removes the UAPI socket");
            let links = std::process::Command::new("ip").args(["link", "show", &iface]).output().unwrap();
            assert!(!links.status.success(), "down removes the interface");
            std::mem::forget(b);
        })
    });
}

#[test]
fn a_hundred_peers_come_and_go_without_disturbing_a_live_one() {
    if skip() {
        return;
    }
    let id = std::process::id();
    let (a, b) = pair("c");
    let uapi = tempfile::tempdir().unwrap();
    let uapi_dir = uapi.path().to_path_buf();
    let b_name = b.0.clone();
    in_netns(&a, move |rt| {
        rt.block_on(async move {
            let b = Netns(b_name);
            let gw = PrivateKey::generate();
            let dev = Device::up(gateway_config(&format!("wgc{id}"), &gw, &uapi_dir))
                .await
                .unwrap();
            let peer = PrivateKey::generate();
            let _wgo = wireguard_go_peer(&b, &format!("wgp{id}"), &peer, &gw, "10.99.0.2/24");
            let live = peer_of(&peer, 2);
            dev.reconcile(std::slice::from_ref(&live)).await.unwrap();
            let warm = blocking({
                let ns = b.0.clone();
                move || {
                    std::process::Command::new("ip")
                        .args([
                            "netns",
                            "exec",
                            &ns,
                            "ping",
                            "-c",
                            "2",
                            "-w",
                            "20",
                            "10.99.0.1",
                        ])
                        .output()
                        .unwrap()
                }
            })
            .await;
            assert!(warm.status.success());
            let before = find(&dev.peers().await, &peer);
            let handshake_at = Instant::now() - before.stats.last_handshake.unwrap();

            // A continuous ping from the live peer while 100 others come and go.
            let ns = b.0.clone();
            let pinger = std::thread::spawn(move || {
                std::process::Command::new("ip")
                    .args([
                        "netns",
                        "exec",
                        &ns,
                        "ping",
                        "-i",
                        "0.01",
                        "-c",
                        "400",
                        "-W",
                        "1",
                        "10.99.0.1",
                    ])
                    .output()
                    .unwrap()
            });
            let others: Vec<PeerConfig> = (0..100)
                .map(|i| {
                    PeerConfig::new(
                        PrivateKey::generate().public_key(),
                        vec![
                            format!("10.98.{}.{}/32", i / 200, i % 200 + 1)
                                .parse()
                                .unwrap(),
                        ],
                    )
                })
                .collect();
            for round in 0..5 {
                let mut desired = vec![live.clone()];
                desired.extend(others[..(round + 1) * 20].iter().cloned());
                let applied = dev.reconcile(&desired).await.unwrap();
                assert_eq!(
                    (applied.added, applied.updated, applied.removed),
                    (20, 0, 0)
                );
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            assert_eq!(dev.peers().await.len(), 101);
            let applied = dev.reconcile(std::slice::from_ref(&live)).await.unwrap();
            assert_eq!(
                (applied.added, applied.updated, applied.removed),
                (0, 0, 100)
            );

            // An in-place update of the live peer keeps its session.
            let mut changed = live.clone();
            changed.keepalive = Some(15);
            let applied = dev.reconcile(&[changed]).await.unwrap();
            assert_eq!(applied.updated, 1);

            let out = blocking(move || pinger.join().unwrap()).await;
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            assert!(
                text.contains(" 0% packet loss"),
                "pings were lost while peers changed: {text}"
            );
            let after = find(&dev.peers().await, &peer);
            let handshake_after = Instant::now() - after.stats.last_handshake.unwrap();
            let drift = if handshake_after > handshake_at {
                handshake_after - handshake_at
            } else {
                handshake_at - handshake_after
            };
            assert!(
                drift < Duration::from_secs(1),
                "the live peer's session was reset (handshake moved by {drift:?})"
            );
            assert!(
                after.stats.rx_bytes > before.stats.rx_bytes
                    && after.stats.tx_bytes > before.stats.tx_bytes,
                "counters kept counting, not reset"
            );
            assert_eq!(after.config.keepalive, Some(15));
            dev.down().await;
            std::mem::forget(b);
        })
    });
}

#[test]
fn an_allowed_ips_update_keeps_the_session_and_takes_effect() {
    if skip() {
        return;
    }
    let id = std::process::id();
    let (a, b) = pair("u");
    let uapi = tempfile::tempdir().unwrap();
    let uapi_dir = uapi.path().to_path_buf();
    let b_name = b.0.clone();
    in_netns(&a, move |rt| {
        rt.block_on(async move {
            let b = Netns(b_name);
            let gw = PrivateKey::generate();
            // This time the first peer is there from the start (the other way up).
            let peer = PrivateKey::generate();
            let live = peer_of(&peer, 2);
            let mut cfg = gateway_config(&format!("wgu{id}"), &gw, &uapi_dir);
            cfg.peers = vec![live.clone()];
            let dev = Device::up(cfg).await.unwrap();
            let wgo_if = format!("wgq{id}");
            let _wgo = wireguard_go_peer(&b, &wgo_if, &peer, &gw, "10.99.0.2/24");
            let ns = b.0.clone();
            let warm = blocking(move || {
                std::process::Command::new("ip")
                    .args([
                        "netns",
                        "exec",
                        &ns,
                        "ping",
                        "-c",
                        "2",
                        "-w",
                        "20",
                        "10.99.0.1",
                    ])
                    .output()
                    .unwrap()
            })
            .await;
            assert!(
                warm.status.success(),
                "peer -> gateway with an initial peer"
            );
            let before = find(&dev.peers().await, &peer);
            let handshake_at = Instant::now() - before.stats.last_handshake.unwrap();

            // The peer gains a second address; the gateway routes it only after the
            // update reaches the device's allowed IPs.
            b.exec(&["ip", "addr", "add", "10.99.0.3/32", "dev", &wgo_if]);
            let mut wider = live.clone();
            wider.allowed_ips.push("10.99.0.3/32".parse().unwrap());
            let applied = dev.reconcile(&[wider]).await.unwrap();
            assert_eq!((applied.added, applied.updated, applied.removed), (0, 1, 0));
            let out = blocking(|| {
                std::process::Command::new("ping")
                    .args(["-c", "2", "-w", "20", "10.99.0.3"])
                    .output()
                    .unwrap()
            })
            .await;
            assert!(
                out.status.success(),
                "the new allowed IP is routed: {}",
                String::from_utf8_lossy(&out.stdout)
            );

            let after = find(&dev.peers().await, &peer);
            let mut ips = after.config.allowed_ips.clone();
            ips.sort();
            assert_eq!(
                ips,
                vec![
                    "10.99.0.2/32".parse().unwrap(),
                    "10.99.0.3/32".parse().unwrap()
                ]
            );
            let handshake_after = Instant::now() - after.stats.last_handshake.unwrap();
            let drift = handshake_after.max(handshake_at) - handshake_after.min(handshake_at);
            assert!(
                drift < Duration::from_secs(1),
                "the session was reset (handshake moved by {drift:?})"
            );
            assert!(
                after.stats.rx_bytes > before.stats.rx_bytes
                    && after.stats.tx_bytes > before.stats.tx_bytes,
                "counters kept counting"
            );
            assert!(
                after.config.endpoint.is_some(),
                "the learned endpoint survived an update with no endpoint"
            );
            dev.down().await;
            std::mem::forget(b);
        })
    });
}
