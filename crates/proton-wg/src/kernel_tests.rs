//! The kernel backend's messages, checked without a kernel module.

use super::*;

fn key(b: u8) -> PublicKey {
    PublicKey::from_bytes([b; 32])
}

#[test]
fn a_new_interface_replaces_peers_and_sets_key_port_mark() {
    let mut c = PeerConfig::new(key(1), vec!["10.7.7.2/32".parse().unwrap()]);
    c.keepalive = Some(25);
    let peers = vec![OwnedPeer::set(&c)];
    let base = ([9; 32], 51820, 0x4000);
    let d = set_message("wg0", Some(&base), true, &peers);
    assert_eq!(d.flags, vec![WgDeviceF::ReplacePeers]);
    assert_eq!(d.private_key, Some(&[9; 32]));
    assert_eq!((d.listen_port, d.fwmark), (Some(51820), Some(0x4000)));
    assert_eq!(d.peers.len(), 1);
    let p = &d.peers[0];
    assert_eq!(p.public_key, &[1; 32]);
    assert_eq!(p.flags, vec![WgPeerF::ReplaceAllowedIps]);
    assert_eq!(p.persistent_keepalive_interval, Some(25));
    assert_eq!(p.allowed_ips.len(), 1);
    assert_eq!(
        p.allowed_ips[0].ipaddr,
        &"10.7.7.2".parse::<IpAddr>().unwrap()
    );
    assert_eq!(p.allowed_ips[0].cidr_mask, Some(32));
    assert_eq!(
        p.endpoint, None,
        "no endpoint: the kernel keeps the learned one"
    );
    assert_eq!(p.preshared_key, Some(&[0; 32]), "no psk: cleared");

    // An adopted interface (daemon restart): key, port, mark, but peers kept.
    let d = set_message("wg0", Some(&base), false, &[]);
    assert!(d.flags.is_empty() && d.peers.is_empty());
    assert_eq!(d.private_key, Some(&[9; 32]));
}

#[test]
fn changes_touch_peers_only_and_removal_carries_only_the_key() {
    let mut upd = PeerConfig::new(key(2), vec!["10.7.7.3/32".parse().unwrap()]);
    upd.endpoint = Some("192.0.2.9:4000".parse().unwrap());
    upd.preshared_key = Some(PresharedKey::from_bytes([5; 32]));
    let changes = [PeerChange::Remove(key(3)), PeerChange::Update(upd)];
    let peers: Vec<_> = changes.iter().map(OwnedPeer::from_change).collect();
    let d = set_message("wg0", None, false, &peers);
    assert!(d.flags.is_empty(), "a change never replaces the peer list");
    assert_eq!((d.private_key, d.listen_port, d.fwmark), (None, None, None));
    let rm = &d.peers[0];
    assert_eq!(rm.flags, vec![WgPeerF::RemoveMe]);
    assert!(rm.allowed_ips.is_empty() && rm.endpoint.is_none());
    assert_eq!(
        (rm.preshared_key, rm.persistent_keepalive_interval),
        (None, None)
    );
    let up = &d.peers[1];
    assert_eq!(up.endpoint, Some(&"192.0.2.9:4000".parse().unwrap()));
    assert_eq!(up.preshared_key, Some(&[5; 32]));
    assert_eq!(up.persistent_keepalive_interval, Some(0), "keepalive off");
}

#[test]
fn kernel_peers_read_as_status() {
    let p = wireguard_uapi::get::Peer {
        public_key: [1; 32],
        preshared_key: [0; 32],
        endpoint: Some("192.0.2.2:51000".parse().unwrap()),
        persistent_keepalive_interval: 0,
        last_handshake_time: Duration::from_secs(1_000),
        rx_bytes: 10,
        tx_bytes: 20,
        allowed_ips: vec![wireguard_uapi::get::AllowedIp {
            family: libc::AF_INET as u16,
            ipaddr: "10.7.7.2".parse().unwrap(),
            cidr_mask: 32,
        }],
        protocol_version: 1,
    };
    let s = status(p.clone(), Duration::from_secs(1_030));
    assert_eq!(s.stats.last_handshake, Some(Duration::from_secs(30)));
    assert_eq!(
        (s.config.keepalive, s.config.preshared_key.is_none()),
        (None, true)
    );
    assert_eq!(
        s.config.allowed_ips,
        vec!["10.7.7.2/32".parse::<IpNet>().unwrap()]
    );
    assert_eq!((s.stats.rx_bytes, s.stats.tx_bytes), (10, 20));
    let never = wireguard_uapi::get::Peer {
        last_handshake_time: Duration::ZERO,
        ..p
    };
    assert_eq!(
        status(never, Duration::from_secs(5)).stats.last_handshake,
        None
    );
}
