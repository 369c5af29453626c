//! The two gotatun traps DESIGN.md warns about, shown on gotatun itself and on a UAPI
//! `set`, so the workarounds in `src/userspace.rs` rest on observed behaviour. If one
//! of these starts failing after a gotatun upgrade, the trap is fixed upstream and its
//! workaround can go. Root only; own namespaces.

use gotatun::device::{DeviceBuilder, Peer};
use gotatun::tun::tun_async_device::TunDevice;
use proton_test_support::netns::*;
use x25519_dalek::{PublicKey, StaticSecret};

#[test]
fn a_device_built_without_peers_binds_no_socket_when_one_is_added() {
    if !is_root() {
        return;
    }
    let id = std::process::id();
    let (a, _b) = pair("t");
    in_netns(&a, move |rt| {
        rt.block_on(async move {
            let mut tc = gotatun::tun::tun::Configuration::default();
            tc.tun_name(format!("wgt{id}"))
                .address("10.98.0.1".parse::<std::net::Ipv4Addr>().unwrap())
                .netmask("255.255.255.0".parse::<std::net::Ipv4Addr>().unwrap())
                .up();
            let tun = TunDevice::from_tun_device(gotatun::tun::tun::create_as_async(&tc).unwrap())
                .unwrap();
            let dev = DeviceBuilder::new()
                .with_default_udp()
                .with_ip(tun)
                .with_private_key(StaticSecret::from([7u8; 32]))
                .with_listen_port(51999)
                .build()
                .await
                .unwrap();
            let ss = || {
                String::from_utf8_lossy(
                    &std::process::Command::new("ss")
                        .args(["-ulnH"])
                        .output()
                        .unwrap()
                        .stdout,
                )
                .to_string()
            };
            assert!(
                !ss().contains(":51999"),
                "no socket before any peer: {}",
                ss()
            );
            dev.write(async |d| {
                d.add_peer(Peer::new(PublicKey::from([9u8; 32])));
            })
            .await
            .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            assert!(!ss().contains(":51999"), "trap 1 fixed upstream? {}", ss());
            dev.stop().await;
        })
    });
}

#[test]
fn a_uapi_set_on_a_live_peer_resets_its_session() {
    if !is_root() || !have("wireguard-go") || !have("wg") {
        return;
    }
    use proton_core::keys::PrivateKey;
    use proton_wg::{Device, InterfaceConfig, PeerConfig};
    let id = std::process::id();
    let (a, b) = pair("r");
    let uapi = tempfile::tempdir().unwrap();
    let dir = uapi.path().to_path_buf();
    let bn = b.0.clone();
    in_netns(&a, move |rt| {
        rt.block_on(async move {
            let b = Netns(bn);
            let gw = PrivateKey::generate();
            let peer = PrivateKey::generate();
            let mut cfg = InterfaceConfig::new(
                &format!("wgr{id}"),
                gw.clone(),
                "10.99.0.1/24".parse().unwrap(),
            );
            cfg.listen_port = Some(51820);
            cfg.uapi_dir = dir.clone();
            cfg.peers = vec![PeerConfig::new(
                peer.public_key(),
                vec!["10.99.0.2/32".parse().unwrap()],
            )];
            let dev = Device::up(cfg).await.unwrap();
            let wgi = format!("wgs{id}");
            let _w = WireguardGo::start(&b, &wgi);
            let kf = dir.join("k");
            std::fs::write(&kf, peer.expose_base64().as_bytes()).unwrap();
            b.exec(&[
                "wg",
                "set",
                &wgi,
                "private-key",
                kf.to_str().unwrap(),
                "peer",
                &gw.public_key().to_base64(),
                "allowed-ips",
                "10.99.0.0/24",
                "endpoint",
                "192.0.2.1:51820",
            ]);
            b.exec(&["ip", "addr", "add", "10.99.0.2/24", "dev", &wgi]);
            b.exec(&["ip", "link", "set", &wgi, "up"]);
            let o = b.try_exec(&["ping", "-c", "2", "-w", "10", "10.99.0.1"]);
            assert!(o.status.success());
            let before = dev.peers().await.remove(0);
            assert!(before.stats.last_handshake.is_some() && before.stats.rx_bytes > 0);
            let d2 = dir.clone();
            let k = peer.public_key().to_base64();
            tokio::task::spawn_blocking(move || {
                wg_with_socket_dir(
                    &d2,
                    &format!("set wgr{id} peer {k} persistent-keepalive 20"),
                )
            })
            .await
            .unwrap();
            let after = dev.peers().await.remove(0);
            assert_eq!(after.config.keepalive, Some(20), "the set was applied");
            assert!(
                after.stats.last_handshake.is_none() && after.stats.rx_bytes == 0,
                "trap 2 fixed upstream? {after:?}"
            );
            dev.down().await;
            std::mem::forget(b);
        })
    });
}
