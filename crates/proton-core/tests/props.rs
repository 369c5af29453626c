//! Property tests (CI) for the parsers of untrusted text, the same entry points the
//! cargo-fuzz targets in `fuzz/` cover (those need nightly; see `bench/fuzz`): the
//! invitation codec, the wg-quick parser and the spec loader. Arbitrary input is parsed
//! or refused with one line, never a panic; what Proton writes parses back to itself.

use proptest::prelude::*;
use proton_core::invite::Invitation;
use proton_core::keys::{PresharedKey, PrivateKey, PublicKey};
use proton_core::net::Cidr;
use proton_core::spec::{Endpoint, EndpointHost, Spec};
use proton_core::wgconf::{PeerSection, WgQuickConfig};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn endpoint() -> impl Strategy<Value = Endpoint> {
    let host = prop_oneof![
        "[a-z][a-z0-9-]{0,10}[a-z0-9](\\.[a-z][a-z0-9]{0,8}){0,3}".prop_map(EndpointHost::Name),
        any::<u32>().prop_map(|a| EndpointHost::Ip(IpAddr::V4(Ipv4Addr::from(a)))),
        any::<u128>().prop_map(|a| EndpointHost::Ip(IpAddr::V6(Ipv6Addr::from(a)))),
    ];
    (host, 1u16..).prop_map(|(host, port)| Endpoint { host, port })
}

/// A valid tunnel network and a peer address in it.
fn network_and_address() -> impl Strategy<Value = (Cidr, Ipv4Addr)> {
    (16u8..=30, any::<u32>(), any::<u32>()).prop_filter_map("a valid range", |(p, n, h)| {
        let base = Ipv4Addr::from(0x0a00_0000 | (n & 0x00ff_ffff));
        let cidr = Cidr::new(ipnet::Ipv4Net::new(base, p).ok()?.trunc()).ok()?;
        cidr.check_tunnel_range().ok()?;
        let cap = cidr.peer_capacity() as u32;
        let addr = Ipv4Addr::from(u32::from(cidr.gateway()) + 1 + h % cap);
        Some((cidr, addr))
    })
}

fn key() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_text_decodes_or_is_refused_in_one_line(text in ".{0,300}") {
        if let Err(e) = Invitation::decode(&text) {
            prop_assert!(!e.to_string().contains('\n'));
        }
    }

    #[test]
    fn any_base64_after_the_prefix_decodes_or_is_refused(
        bytes in proptest::collection::vec(any::<u8>(), 0..200)
    ) {
        use base64::Engine;
        let text = format!(
            "proton1-{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes)
        );
        if let Ok(inv) = Invitation::decode(&text) {
            prop_assert_eq!(Invitation::decode(&inv.encode()).unwrap(), inv);
        }
    }

    #[test]
    fn every_invitation_round_trips(
        ep in endpoint(),
        (net, addr) in network_and_address(),
        gw in key(),
        expires in any::<u64>(),
    ) {
        let inv = Invitation::new(ep, PublicKey::from_bytes(gw), net, addr, expires);
        let text = inv.encode();
        prop_assert!(text.len() < 400 && !text.contains(char::is_whitespace));
        prop_assert_eq!(Invitation::decode(&text).unwrap(), inv);
    }

    #[test]
    fn any_text_parses_as_wg_quick_or_is_refused(text in "(?s).{0,400}") {
        match WgQuickConfig::parse(&text) {
            Ok(cfg) => prop_assert!(WgQuickConfig::parse(&cfg.render()).is_ok()),
            Err(e) => prop_assert!(!e.to_string().contains('\n')),
        }
    }

    #[test]
    fn wg_quick_lines_in_any_order_parse_or_are_refused(
        lines in proptest::collection::vec(prop_oneof![
            Just("[Interface]".to_string()),
            Just("[Peer]".to_string()),
            "(PrivateKey|PublicKey|PresharedKey) = [A-Za-z0-9+/=]{0,46}",
            "(Address|AllowedIPs|DNS) = [0-9a-f.:/, ]{0,40}",
            "(ListenPort|MTU|PersistentKeepalive|FwMark) = [0-9a-fx]{0,8}",
            "Endpoint = [a-z0-9.:\\[\\]]{0,30}",
            "# [a-z ]{0,10}",
        ], 0..20)
    ) {
        let text = lines.join("\n");
        if let Ok(cfg) = WgQuickConfig::parse(&text) {
            prop_assert_eq!(WgQuickConfig::parse(&cfg.render()).unwrap(), cfg);
        }
    }

    #[test]
    fn every_rendered_config_parses_back_to_itself(
        private in key(),
        (net, addr) in network_and_address(),
        port in proptest::option::of(1u16..),
        mtu in proptest::option::of(1280u16..=9000),
        peers in proptest::collection::vec(
            (key(), proptest::option::of(key()), "[a-z][a-z0-9-]{0,20}",
             proptest::option::of(endpoint()), proptest::option::of(0u16..)),
            0..5,
        ),
    ) {
        let mut cfg = WgQuickConfig::default();
        cfg.interface.private_key = Some(PrivateKey::from_bytes(private));
        cfg.interface.addresses = vec![net.with_host(addr).into()];
        cfg.interface.listen_port = port;
        cfg.interface.mtu = mtu;
        for (k, psk, name, ep, keepalive) in peers {
            let mut p = PeerSection::new(PublicKey::from_bytes(k));
            p.preshared_key = psk.map(PresharedKey::from_bytes);
            p.name = Some(name);
            p.allowed_ips = vec![net.net().into()];
            p.endpoint = ep;
            p.persistent_keepalive = keepalive;
            cfg.peers.push(p);
        }
        prop_assert_eq!(WgQuickConfig::parse(&cfg.render()).unwrap(), cfg);
    }

    #[test]
    fn any_text_is_a_valid_spec_or_refused_in_one_line(text in "(?s).{0,400}") {
        match Spec::from_toml_str(&text) {
            Ok(spec) => prop_assert_eq!(Spec::from_toml_str(&spec.to_toml()).unwrap(), spec),
            Err(e) => prop_assert!(!e.to_string().contains('\n'), "{}", e),
        }
    }

    #[test]
    fn spec_like_text_is_a_valid_spec_or_refused_in_one_line(
        lines in proptest::collection::vec(prop_oneof![
            Just("[gateway]".to_string()),
            Just("[network]".to_string()),
            Just("[k3s]".to_string()),
            "endpoint = \"[a-z0-9.:\\[\\]]{0,20}\"",
            "name = \"[a-zA-Z0-9_-]{0,70}\"",
            "cidr = \"[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}/[0-9]{1,2}\"",
            "(mtu|persistent_keepalive|fwmark) = -?[0-9]{1,12}",
            "interface = \".{0,20}\"",
            "version = \"v[0-9.+a-z]{0,16}\"",
        ], 0..12)
    ) {
        let text = lines.join("\n");
        match Spec::from_toml_str(&text) {
            Ok(spec) => {
                prop_assert!(spec.network.cidr.check_tunnel_range().is_ok());
                prop_assert_eq!(Spec::from_toml_str(&spec.to_toml()).unwrap(), spec);
            }
            Err(e) => prop_assert!(!e.to_string().contains('\n'), "{}", e),
        }
    }

    #[test]
    fn every_valid_spec_written_back_parses_to_itself(
        ep in endpoint(),
        (net, _) in network_and_address(),
        mtu in 1280u16..=9000,
        keepalive in any::<u16>(),
        name in "[a-z][a-z0-9-]{0,30}[a-z0-9]",
    ) {
        let mut spec = Spec::new(ep);
        spec.network.cidr = net;
        spec.network.mtu = mtu;
        spec.network.persistent_keepalive = keepalive;
        spec.gateway.name = name;
        prop_assert!(spec.validate().is_ok());
        prop_assert_eq!(Spec::from_toml_str(&spec.to_toml()).unwrap(), spec);
    }
}
