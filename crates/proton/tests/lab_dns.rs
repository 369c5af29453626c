//! DNS on the tunnel, in the lab with a real wireguard-go phone (which ignores `DNS =`,
//! so the test asks the resolver at the tunnel address from the phone's namespace): a
//! split-tunnel phone resolves `w1` and a VPN-only host to tunnel addresses, a peer
//! added later without a restart, other names through the gateway's own resolver (a
//! stand-in on the lab's internet), and the resolver never answers on the public
//! address. Needs root; skipped otherwise.

use proton_test_support::lab::{LabGuard, root_and_tools};
use std::process::Command;
use std::time::Duration;

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_proton");

/// A DNS client in a few lines of Python (RFC 1035 wire format): asks `server` for the
/// A records of `name` over udp or tcp; prints `rcode=N ADDR…`, or `noanswer …`.
const ASK: &str = r#"
import socket, struct, sys, random
name, server, proto = sys.argv[1], sys.argv[2], sys.argv[3]
qid = random.randint(0, 65535)
q = struct.pack('>HHHHHH', qid, 0x0100, 1, 0, 0, 0)
q += b''.join(bytes([len(l)]) + l.encode() for l in name.split('.')) + b'\0' + struct.pack('>HH', 1, 1)
try:
    if proto == 'udp':
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
        s.sendto(q, (server, 53)); r = s.recv(4096)
    else:
        s = socket.create_connection((server, 53), timeout=3)
        s.sendall(struct.pack('>H', len(q)) + q)
        n = struct.unpack('>H', s.recv(2))[0]; r = b''
        while len(r) < n: r += s.recv(n - len(r))
except OSError as e:
    print('noanswer', e); sys.exit(0)
rid, flags, qd, an, ns, ar = struct.unpack('>HHHHHH', r[:12])
assert rid == qid
i = 12
def skip(i):
    while True:
        l = r[i]
        if l == 0: return i + 1
        if l & 0xc0 == 0xc0: return i + 2
        i += l + 1
for _ in range(qd): i = skip(i) + 4
out = []
for _ in range(an):
    i = skip(i); t, c, ttl, rl = struct.unpack('>HHIH', r[i:i + 10]); i += 10
    if t == 1: out.append(socket.inet_ntoa(r[i:i + 4]))
    i += rl
print('rcode=%d' % (flags & 15), ' '.join(out))
"#;

/// The internet's resolver, as small as it gets: every A question is answered with
/// 192.0.2.80 (RFC 1035 answer: the question copied, one A record pointing at it).
const UPSTREAM: &str = r#"
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[1], 53))
while True:
    q, peer = s.recvfrom(4096)
    i = 12
    while q[i] != 0: i += q[i] + 1
    question = q[12:i + 5]
    head = struct.pack('>HHHHHH', struct.unpack('>H', q[:2])[0], 0x8180, 1, 1, 0, 0)
    a = struct.pack('>HHHIH', 0xc00c, 1, 1, 60, 4) + socket.inet_aton('192.0.2.80')
    s.sendto(head + question + a, peer)
"#;

fn ask(lab: &LabGuard, node: &str, name: &str, server: &str, proto: &str) -> String {
    lab.ok(node, &["python3", "-c", ASK, name, server, proto])
        .trim()
        .to_string()
}

#[test]
fn a_phone_resolves_peers_and_vpn_only_hosts_through_the_tunnel_and_the_rest_upstream() {
    if !root_and_tools() {
        return;
    }
    let lab = LabGuard::up(BIN, "td", 1, 0, 1);
    assert!(lab.ping("c1", "10.7.7.1"), "phone -> gateway");

    // The internet's resolver at .53 on the lab's internet, and the gateway's
    // /etc/resolv.conf pointing at it (as a VPS's does at its provider's).
    let upstream = lab.public_ip(53);
    let inet_ns = format!("{}-inet", lab.0);
    let added = Command::new("ip")
        .args([
            "-n",
            &inet_ns,
            "addr",
            "add",
            &format!("{upstream}/24"),
            "dev",
            "br0",
        ])
        .status()
        .unwrap();
    assert!(added.success());
    // `ip netns exec` execs python itself, so this child is the server (killed on drop).
    let _server = Server(
        Command::new("ip")
            .args([
                "netns", "exec", &inet_ns, "python3", "-c", UPSTREAM, &upstream,
            ])
            .spawn()
            .unwrap(),
    );
    let resolv = format!("{}/etc/resolv.conf", lab.root("gw"));
    std::fs::write(&resolv, format!("nameserver {upstream}\n")).unwrap();

    // A VPN-only service, exposed after the daemon started.
    let out = lab.proton(
        "gw",
        &[
            "expose",
            "grafana",
            "--host",
            "grafana.example.org",
            "--service",
            "monitoring/grafana:80",
            "--vpn-only",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    for proto in ["udp", "tcp"] {
        assert_eq!(
            ask(&lab, "c1", "w1.proton.internal", "10.7.7.1", proto),
            "rcode=0 10.7.7.2",
            "{proto}: a worker by name"
        );
        assert_eq!(
            ask(&lab, "c1", "grafana.example.org", "10.7.7.1", proto),
            "rcode=0 10.7.7.1",
            "{proto}: a VPN-only host points into the tunnel"
        );
    }
    assert_eq!(
        ask(&lab, "c1", "nobody.proton.internal", "10.7.7.1", "udp"),
        "rcode=3",
        "an unknown name in the zone is NXDOMAIN"
    );
    // Everything else goes to the gateway's own resolver (the stand-in answers 192.0.2.80).
    let mut forwarded = String::new();
    for _ in 0..20 {
        forwarded = ask(&lab, "c1", "www.example.com", "10.7.7.1", "udp");
        if forwarded == "rcode=0 192.0.2.80" {
            break;
        }
        std::thread::sleep(Duration::from_millis(500)); // the stand-in may still be starting
    }
    assert_eq!(forwarded, "rcode=0 192.0.2.80", "forwarded upstream");

    // A peer added now is answered without a restart.
    let out = lab.proton("gw", &["client", "add", "laptop", "--no-qr"], None);
    assert!(out.status.success());
    let config = String::from_utf8_lossy(&out.stdout);
    assert!(
        config.contains("DNS = 10.7.7.1, proton.internal"),
        "{config}"
    );
    let laptop = config
        .lines()
        .find_map(|l| l.strip_prefix("Address = "))
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        ask(&lab, "c1", "laptop.proton.internal", "10.7.7.1", "udp"),
        format!("rcode=0 {laptop}")
    );

    // Never on the public address: no answer over udp, no connection over tcp.
    let public = lab.public_ip(1);
    for proto in ["udp", "tcp"] {
        let got = ask(&lab, "c1", "w1.proton.internal", &public, proto);
        assert!(got.starts_with("noanswer"), "{proto} on {public}: {got}");
    }
}

/// The stand-in upstream's process, ended (by its own pid) when the test ends.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
