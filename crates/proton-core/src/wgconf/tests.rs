use super::*;
use crate::spec::EndpointHost;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn arb_net() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        (any::<u32>(), 0u8..=32)
            .prop_map(|(a, p)| IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::from(a), p).unwrap())),
        (any::<u128>(), 0u8..=128)
            .prop_map(|(a, p)| IpNet::V6(ipnet::Ipv6Net::new(Ipv6Addr::from(a), p).unwrap())),
    ]
}

fn arb_endpoint() -> impl Strategy<Value = Endpoint> {
    let host = prop_oneof![
        any::<u32>().prop_map(|a| EndpointHost::Ip(IpAddr::V4(Ipv4Addr::from(a)))),
        any::<u128>().prop_map(|a| EndpointHost::Ip(IpAddr::V6(Ipv6Addr::from(a)))),
        "[a-z][a-z0-9]{0,8}(\\.[a-z][a-z0-9]{0,8}){0,3}".prop_map(EndpointHost::Name),
    ];
    (host, 1u16..).prop_map(|(host, port)| Endpoint { host, port })
}

fn arb_key() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}

fn arb_cmd() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9 %/._=-]{0,30}[a-z0-9]".prop_map(|s| s)
}

fn arb_peer() -> impl Strategy<Value = PeerSection> {
    (
        proptest::option::of("[a-z][a-z0-9-]{0,12}"),
        arb_key(),
        proptest::option::of(arb_key()),
        proptest::collection::vec(arb_net(), 0..4),
        proptest::option::of(arb_endpoint()),
        proptest::option::of(any::<u16>()),
    )
        .prop_map(
            |(name, pk, psk, allowed_ips, endpoint, keepalive)| PeerSection {
                name,
                public_key: PublicKey::from_bytes(pk),
                preshared_key: psk.map(|b| PresharedKey::from_base64(&base64_of(&b)).unwrap()),
                allowed_ips,
                endpoint,
                persistent_keepalive: keepalive,
            },
        )
}

fn base64_of(b: &[u8; 32]) -> String {
    PublicKey::from_bytes(*b).to_base64()
}

fn arb_config() -> impl Strategy<Value = WgQuickConfig> {
    let iface = (
        proptest::option::of(arb_key()),
        proptest::collection::vec(arb_net(), 0..3),
        proptest::option::of(any::<u16>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u16>()),
        proptest::collection::vec(
            "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}|[a-z]{1,8}\\.lan",
            0..3,
        ),
        proptest::option::of("off|auto|[0-9]{1,5}"),
        proptest::collection::vec(arb_cmd(), 0..2),
        proptest::collection::vec(arb_cmd(), 0..2),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(
            |(
                k,
                addresses,
                listen_port,
                fwmark,
                mtu,
                dns,
                table,
                pre_up,
                post_down,
                save_config,
            )| {
                InterfaceSection {
                    private_key: k.map(PrivateKey::from_bytes),
                    addresses,
                    listen_port,
                    fwmark,
                    mtu,
                    dns,
                    table,
                    pre_up,
                    post_up: Vec::new(),
                    pre_down: Vec::new(),
                    post_down,
                    save_config,
                }
            },
        );
    (iface, proptest::collection::vec(arb_peer(), 0..4))
        .prop_map(|(interface, peers)| WgQuickConfig { interface, peers })
}

proptest! {
    #[test]
    fn render_then_parse_is_identity(cfg in arb_config()) {
        let text = cfg.render();
        let back = WgQuickConfig::parse(&text).unwrap();
        prop_assert_eq!(back, cfg);
    }
}

#[test]
fn parses_what_people_write() {
    let text = "\
# my laptop
[interface]
privatekey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=
Address = 10.7.7.5/24, fd00::5/64
Address = 10.8.0.1
DNS = 10.7.7.1, home.lan
PostUp = iptables -A FORWARD -i %i -j ACCEPT # keep me
FwMark = 0x4000

[Peer]
# gateway
PublicKey = HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=
AllowedIPs = 10.7.7.0/24
Endpoint = [2001:db8::1]:51820
PersistentKeepalive = 25
";
    let c = WgQuickConfig::parse(text).unwrap();
    assert_eq!(c.interface.addresses.len(), 3);
    assert_eq!(c.interface.dns, vec!["10.7.7.1", "home.lan"]);
    // wg-quick runs `${line%%\#*}`: the comment is not part of the command.
    assert_eq!(
        c.interface.post_up,
        vec!["iptables -A FORWARD -i %i -j ACCEPT"]
    );
    assert_eq!(c.interface.fwmark, Some(0x4000));
    assert_eq!(c.peers[0].name.as_deref(), Some("gateway"));
    assert_eq!(
        c.peers[0].endpoint.as_ref().unwrap().to_string(),
        "[2001:db8::1]:51820"
    );
}

#[test]
fn errors_carry_the_line_number() {
    let e = WgQuickConfig::parse("[Interface]\nListenPort = 51820\nBogus = 1\n").unwrap_err();
    assert_eq!(e.line, 3);
    assert!(e.to_string().contains("bogus"), "{e}");
    let e = WgQuickConfig::parse("[Interface]\n[Peer]\nAllowedIPs = 10.0.0.0/8\n").unwrap_err();
    assert!(e.to_string().contains("no PublicKey"), "{e}");
    let e = WgQuickConfig::parse("[Peer]\nPublicKey = short\n").unwrap_err();
    assert_eq!(e.line, 2);
    let e = WgQuickConfig::parse(
        "[Peer]\nPublicKey = HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=\nEndpoint = host\n",
    )
    .unwrap_err();
    assert!(e.to_string().contains(":PORT"), "{e}");
}

#[test]
fn setconf_form_drops_wg_quick_only_keys() {
    let mut c = WgQuickConfig::default();
    c.interface.private_key = Some(PrivateKey::generate());
    c.interface.addresses.push("10.7.7.1/24".parse().unwrap());
    c.interface.mtu = Some(1420);
    c.interface.post_up.push("echo hi".into());
    c.interface.listen_port = Some(51820);
    let s = c.render_wg_setconf();
    assert!(!s.contains("Address") && !s.contains("MTU") && !s.contains("PostUp"));
    assert!(s.contains("ListenPort = 51820"));
}

#[test]
fn hooks_are_cut_at_hash_like_wg_quick_and_keep_equals_signs() {
    let c = WgQuickConfig::parse(
        "[Interface]\nPostUp = iptables -A FORWARD -i %i -j ACCEPT # allow forwarding\nPreDown = sysctl net.ipv4.ip_forward=0\n",
    )
    .unwrap();
    assert_eq!(
        c.interface.post_up,
        vec!["iptables -A FORWARD -i %i -j ACCEPT"]
    );
    assert_eq!(c.interface.pre_down, vec!["sysctl net.ipv4.ip_forward=0"]);
}
