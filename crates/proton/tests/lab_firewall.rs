//! Proton's nftables table (`inet proton`) on a lab gateway, driven through the real
//! binary: the daemon restores it after `nft flush ruleset` (what restarting Debian's
//! nftables service does), keeps an invitee's key off the device while the table cannot
//! be loaded (the fence fails closed), and `proton doctor` says so. Needs root.

use proton_test_support::lab::{LabGuard, root_and_tools, wg_dump};
use std::time::Duration;

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_proton");

/// Polls `f` every 200 ms for up to `secs` seconds.
fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..secs * 5 {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    f()
}

fn table(lab: &LabGuard) -> String {
    let out = lab.exec("gw", &["nft", "list", "table", "inet", "proton"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn doctor(lab: &LabGuard) -> String {
    let out = lab.proton("gw", &["doctor"], None);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_daemon_restores_a_flushed_table_and_the_fence_fails_closed() {
    if !root_and_tools() {
        return;
    }
    let lab = LabGuard::up(BIN, "tf", 1, 1, 0);
    // No `proton apply` ran: the daemon made the table and admitted w1 as a worker.
    let t = table(&lab);
    assert!(t.contains("tunnel and loopback only"), "{t}");
    assert!(
        t.contains("elements = { 10.7.7.2 }"),
        "w1 is in the workers set: {t}"
    );
    let d = doctor(&lab);
    assert!(d.contains("[pass] firewall table"), "{d}");
    assert!(d.contains("[pass] invitee fence"), "{d}");

    // `nft flush ruleset`: every table gone; the daemon notices and restores all of it.
    lab.ok("gw", &["nft", "flush", "ruleset"]);
    assert!(
        eventually(10, || {
            let t = table(&lab);
            t.contains("the invitee fence") && t.contains("elements = { 10.7.7.2 }")
        }),
        "the daemon restored the table with its sets: {}",
        table(&lab)
    );
    assert!(lab.ping("w1", "10.7.7.1"), "w1 still reaches the gateway");

    // Now the table cannot be loaded: another program holds its name (an nftables
    // "owner" table, which only the socket that made it may change) for 25 s.
    let name = lab.0.clone();
    let holder = std::thread::spawn(move || {
        std::process::Command::new(BIN)
            .args(["lab", "exec", "gw", "--name", &name, "--", "sh", "-c"])
            .arg("(printf 'flush ruleset\\nadd table inet proton { flags owner ; }\\n'; sleep 25) | nft -i >/dev/null 2>&1")
            .output()
            .unwrap()
    });
    assert!(
        eventually(10, || {
            let t = table(&lab);
            t.contains("table inet proton") && !t.contains("chain")
        }),
        "the holder took the table's name: {}",
        table(&lab)
    );
    let invite = lab.proton("gw", &["invite", "w2", "--no-qr"], None);
    assert!(invite.status.success());
    let stderr = String::from_utf8_lossy(&invite.stderr).into_owned();
    assert!(
        !stderr.contains("applied live") && stderr.contains("invitee fence is not in place"),
        "invite says the key is kept off: {stderr}"
    );
    let invitation = String::from_utf8_lossy(&invite.stdout)
        .lines()
        .find(|l| l.starts_with("proton1-"))
        .unwrap()
        .to_string();
    let inv = proton_core::invite::Invitation::decode(&invitation).unwrap();
    let throwaway = inv.throwaway.public_key().to_base64();
    let on_device = |lab: &LabGuard| wg_dump(lab).iter().any(|p| p[0] == throwaway);
    assert!(
        !on_device(&lab),
        "an invitee's key must not reach the device without the fence"
    );
    let d = doctor(&lab);
    assert!(d.contains("[FAIL] firewall table"), "{d}");
    assert!(d.contains("[FAIL] invitee fence"), "{d}");
    assert!(lab.ping("w1", "10.7.7.1"), "joined peers keep working");
    assert!(!on_device(&lab));

    // The holder lets go: the daemon loads the table, then puts the invitee on.
    holder.join().unwrap();
    assert!(
        eventually(15, || on_device(&lab)),
        "once the fence is back the invitee's key goes on the device"
    );
    let t = table(&lab);
    assert!(t.contains("the invitee fence"), "{t}");
    let d = doctor(&lab);
    assert!(d.contains("[pass] firewall table"), "{d}");
    assert!(d.contains("[pass] invitee fence"), "{d}");
}

/// A namespace of this test's own, deleted on drop.
struct OwnNetns(String);

impl Drop for OwnNetns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

fn sh(args: &[&str]) {
    let out = std::process::Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The config text `proton client add` printed (the QR code cut off), without its
/// `DNS =` lines: wg-quick would hand them to resolvconf, i.e. rewrite this host's
/// resolver (the resolver on the tunnel is tested by querying it directly).
fn client_config(stdout: &str) -> String {
    stdout
        .lines()
        .take_while(|l| !l.contains('█') && !l.contains('▀') && !l.contains('▄'))
        .filter(|l| !l.trim_start().starts_with("DNS"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// As on a real VPS: the "internet" host has no route back to the VPN range, so a
/// full-tunnel phone reaches it only if the gateway translates its source address; and
/// the phone's IPv6 (it has a global address and a default route of its own) must not
/// go around the tunnel.
#[test]
fn a_full_tunnel_phone_reaches_the_internet_through_the_gateway_and_leaks_no_ipv6() {
    if !root_and_tools() {
        return;
    }
    let lab = LabGuard::up(BIN, "tn", 0, 0, 1);
    let net = lab.state()["public_net"]
        .as_str()
        .unwrap()
        .replace(".0/24", "");
    let far = OwnNetns(format!("pnft-far-{}", std::process::id()));
    sh(&["ip", "netns", "add", &far.0]);
    let inet = format!("{}-inet", lab.0);
    sh(&[
        "ip", "link", "add", "far0", "netns", &far.0, "type", "veth", "peer", "name", "p-far",
        "netns", &inet,
    ]);
    sh(&[
        "ip", "-n", &inet, "link", "set", "p-far", "master", "br0", "up",
    ]);
    let far_link = format!("{net}.200/24");
    for args in [
        vec!["addr", "add", far_link.as_str(), "dev", "far0"],
        vec!["addr", "add", "2001:db8:77::200/64", "dev", "far0", "nodad"],
        vec!["addr", "add", "203.0.113.10/32", "dev", "lo"],
        vec!["addr", "add", "2001:db8:99::10/128", "dev", "lo"],
        vec!["link", "set", "lo", "up"],
        vec!["link", "set", "far0", "up"],
    ] {
        let mut argv = vec!["ip", "-n", far.0.as_str()];
        argv.extend(args);
        sh(&argv);
    }
    // Count the traffic (TCP, UDP: not neighbour discovery on the link) that reaches the
    // internet host from the phone's own IPv6 address.
    let watch = format!("/run/proton-lab/{}/watch.nft", lab.0);
    std::fs::write(
        &watch,
        "table inet watch {\n\tchain input {\n\t\ttype filter hook input priority 0;\n\t\tip6 saddr 2001:db8:77::101 meta l4proto { tcp, udp } counter\n\t}\n}\n",
    )
    .unwrap();
    sh(&["ip", "netns", "exec", &far.0, "nft", "-f", &watch]);
    let v6_packets = || {
        let out = std::process::Command::new("ip")
            .args([
                "netns", "exec", &far.0, "nft", "list", "table", "inet", "watch",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split("packets ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap()
    };
    let listener = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &far.0,
            "python3",
            "-m",
            "http.server",
            "8080",
            "--bind",
            "::",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _listener = KillOnDrop(listener);
    // The gateway reaches the internet host (its "upstream"); nothing routes the VPN
    // range back. The phone has IPv6 of its own, routed by the internet host.
    let via = format!("{net}.200");
    lab.ok(
        "gw",
        &["ip", "route", "add", "203.0.113.10/32", "via", &via],
    );
    lab.ok("c1", &["ip", "link", "del", "wg0"]);
    lab.ok(
        "c1",
        &[
            "ip",
            "addr",
            "add",
            "2001:db8:77::101/64",
            "dev",
            "eth0",
            "nodad",
        ],
    );
    lab.ok(
        "c1",
        &[
            "ip",
            "-6",
            "route",
            "add",
            "default",
            "via",
            "2001:db8:77::200",
        ],
    );
    let connect = |host: &str| {
        lab.exec(
            "c1",
            &[
                "python3",
                "-c",
                &format!("import socket; socket.create_connection(('{host}', 8080), timeout=4)"),
            ],
        )
        .status
        .success()
    };
    assert!(
        eventually(10, || lab
            .exec(
                "gw",
                &[
                    "python3",
                    "-c",
                    "import socket; socket.create_connection(('203.0.113.10', 8080), timeout=2)"
                ]
            )
            .status
            .success()),
        "the gateway reaches the internet host"
    );
    assert!(
        connect("2001:db8:99::10"),
        "without a tunnel the phone's IPv6 reaches the internet host (so this test can fail)"
    );
    assert!(v6_packets() > 0);
    // What that connection sent, its closing packets included.
    std::thread::sleep(Duration::from_secs(1));
    let before = v6_packets();

    // The phone: exactly what `client add --full-tunnel` printed, brought up by wg-quick
    // (wireguard-go as its userspace implementation), which routes 0.0.0.0/0 and ::/0
    // into the tunnel the way it does on a laptop.
    let out = lab.proton("gw", &["client", "add", "phone", "--full-tunnel"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conf = client_config(&String::from_utf8_lossy(&out.stdout));
    assert!(conf.contains("AllowedIPs = 0.0.0.0/0, ::/0"), "{conf}");
    wg_quick_up(&lab, "c1", &conf);
    assert!(lab.ping("c1", "10.7.7.1"), "the phone reaches the gateway");
    assert!(
        eventually(10, || connect("203.0.113.10")),
        "a full-tunnel phone reaches an internet host that has no route back to the VPN"
    );
    assert!(
        !connect("2001:db8:99::10"),
        "the phone's IPv6 must not get around the tunnel"
    );
    assert_eq!(
        v6_packets(),
        before,
        "no IPv6 from the phone reached the internet host"
    );
    let t = table(&lab);
    assert!(t.contains("masquerade"), "{t}");
}

/// Brings `conf` up in `node` with wg-quick (wireguard-go as its userspace
/// implementation), as interface `wgf`, the way a laptop would.
fn wg_quick_up(lab: &LabGuard, node: &str, conf: &str) {
    let path = format!("/run/proton-lab/{}/{node}/wgf.conf", lab.0);
    proton_core::host::write_atomic(std::path::Path::new(&path), conf.as_bytes(), 0o600).unwrap();
    let up = lab.exec(
        node,
        &[
            "sh",
            "-c",
            &format!(
                "LOG_LEVEL=silent WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go wg-quick up {path} >{path}.log 2>&1 || {{ cat {path}.log; exit 1; }}"
            ),
        ],
    );
    assert!(
        up.status.success(),
        "wg-quick up in {node}: {}{}",
        String::from_utf8_lossy(&up.stdout),
        String::from_utf8_lossy(&up.stderr)
    );
}

/// Kills a process started in a lab node when the test ends.
struct Kill(String);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").arg(&self.0).status();
    }
}

/// TCP listeners on `ports` (every address) in `node`; a port already taken (say, a
/// resolver on 53) is left to its owner.
fn listen(lab: &LabGuard, node: &str, ports: &[u16]) -> Kill {
    let script = format!("/run/proton-lab/{}/listen.py", lab.0);
    std::fs::write(
        &script,
        "import socket, sys, threading\n\
         def serve(s):\n    while True:\n        c, _ = s.accept(); c.close()\n\
         for p in sys.argv[1:]:\n    s = socket.socket()\n    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n    try:\n        s.bind(('0.0.0.0', int(p))); s.listen(64)\n    except OSError:\n        continue\n    threading.Thread(target=serve, args=(s,)).start()\n",
    )
    .unwrap();
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    let pid = lab.ok(
        node,
        &[
            "sh",
            "-c",
            &format!(
                "python3 {script} {} >/dev/null 2>&1 & echo $!",
                ports.join(" ")
            ),
        ],
    );
    Kill(pid.trim().to_string())
}

/// Whether `node` opens a TCP connection to `host:port` within 3 s.
fn tcp(lab: &LabGuard, node: &str, host: &str, port: u16) -> bool {
    lab.exec(
        node,
        &[
            "python3",
            "-c",
            &format!("import socket; socket.create_connection(('{host}', {port}), timeout=3)"),
        ],
    )
    .status
    .success()
}

fn ping(lab: &LabGuard, node: &str, host: &str) -> bool {
    lab.exec(node, &["ping", "-c", "1", "-w", "3", host])
        .status
        .success()
}

/// The `peer list --json` entries, by name.
fn peers(lab: &LabGuard) -> std::collections::BTreeMap<String, serde_json::Value> {
    let list = lab.proton("gw", &["peer", "list", "--json"], None);
    let peers: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    peers
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_string(), p.clone()))
        .collect()
}

/// Who may reach what, every pair: workers reach the gateway and each other; a plain
/// client reaches the gateway's 80/443 (and DNS) and nothing else; a client added with
/// `--admin` reaches the kube API, the kubelets and the workers.
#[test]
fn reach_per_role_plain_client_admin_client_and_workers() {
    if !root_and_tools() {
        return;
    }
    let lab = LabGuard::up(BIN, "tr", 2, 0, 2);
    // c1 is the lab's plain client (split tunnel); c2 becomes an --admin client.
    lab.ok("c2", &["ip", "link", "del", "wg0"]);
    let out = lab.proton("gw", &["client", "add", "boss", "--admin"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wg_quick_up(
        &lab,
        "c2",
        &client_config(&String::from_utf8_lossy(&out.stdout)),
    );
    let _gw = listen(&lab, "gw", &[53, 80, 443, 6443, 10250]);
    let _w1 = listen(&lab, "w1", &[10250, 8080]);
    let _w2 = listen(&lab, "w2", &[10250]);
    let tcp = |node: &str, host: &str, port: u16| tcp(&lab, node, host, port);
    let ping = |node: &str, host: &str| ping(&lab, node, host);
    let addr =
        |name: &str| -> String { peers(&lab)[name]["address"].as_str().unwrap().to_string() };
    let (w1, w2, c2) = (addr("w1"), addr("w2"), addr("boss"));
    assert!(
        eventually(10, || tcp("gw", "127.0.0.1", 10250)),
        "listeners up"
    );

    // Workers: the gateway and each other.
    assert!(tcp("w1", "10.7.7.1", 6443), "worker -> kube API");
    assert!(tcp("w1", &w2, 10250), "worker -> worker's kubelet");
    assert!(tcp("w2", &w1, 10250), "worker -> worker's kubelet");
    assert!(ping("w1", &w2), "worker -> worker");

    // The plain client: the gateway's ingress and DNS, nothing else.
    assert!(ping("c1", "10.7.7.1"), "plain client -> gateway ping");
    assert!(tcp("c1", "10.7.7.1", 443), "plain client -> 443");
    assert!(tcp("c1", "10.7.7.1", 80), "plain client -> 80");
    assert!(tcp("c1", "10.7.7.1", 53), "plain client -> DNS over TCP");
    assert!(!tcp("c1", "10.7.7.1", 6443), "plain client refused at 6443");
    assert!(
        !tcp("c1", "10.7.7.1", 10250),
        "plain client refused at 10250"
    );
    assert!(
        !tcp("c1", "10.7.7.1", 9586),
        "plain client refused at the metrics"
    );
    assert!(
        !tcp("c1", &w1, 10250),
        "plain client refused at a worker's kubelet"
    );
    assert!(!tcp("c1", &w1, 8080), "plain client refused at a worker");
    assert!(!ping("c1", &w1), "plain client cannot ping a worker");
    assert!(!ping("c1", &c2), "plain client cannot reach another client");

    // The --admin client: the kube API, kubelets and workers.
    assert!(tcp("c2", "10.7.7.1", 6443), "admin client -> kube API");
    assert!(
        tcp("c2", "10.7.7.1", 10250),
        "admin client -> gateway kubelet"
    );
    assert!(tcp("c2", &w1, 10250), "admin client -> worker's kubelet");
    assert!(ping("c2", &w1), "admin client -> worker");

    // `peer list` says each peer's reach.
    let list = lab.proton("gw", &["peer", "list", "--json"], None);
    let peers: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let reach = |name: &str| {
        peers
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["reach"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(reach("w1"), "gateway, workers, cluster");
    assert_eq!(reach("c1"), "gateway DNS, 80/443, internet");
    assert_eq!(reach("boss"), "everything (--admin)");
    let text =
        String::from_utf8_lossy(&lab.proton("gw", &["peer", "list"], None).stdout).into_owned();
    // So does `status` (from the daemon).
    let st = lab.proton("gw", &["status", "--json"], None);
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    let live = |name: &str| {
        st["peers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["reach"]
            .clone()
    };
    assert_eq!(live("boss"), "everything (--admin)");
    assert_eq!(live("c1"), "gateway DNS, 80/443, internet");
    assert_eq!(live("w2"), "gateway, workers, cluster");
    assert!(
        text.contains("REACH") && text.contains("everything (--admin)"),
        "{text}"
    );
}

/// Named grants (`client add --allow`, `client allow|deny`): a client reaches exactly
/// the peer ports it was given, on top of a client's default, and loses them when they
/// are taken away; the rest of the pairs stay as for a plain client.
#[test]
fn a_client_reaches_exactly_the_peer_ports_it_was_granted() {
    if !root_and_tools() {
        return;
    }
    let lab = LabGuard::up(BIN, "tg", 2, 0, 2);
    let _gw = listen(&lab, "gw", &[6443, 10250]);
    let _w1 = listen(&lab, "w1", &[8080, 8081]);
    let _w2 = listen(&lab, "w2", &[8080]);
    let all = peers(&lab);
    let (w1, w2) = (
        all["w1"]["address"].as_str().unwrap().to_string(),
        all["w2"]["address"].as_str().unwrap().to_string(),
    );
    let gw_name = all.values().find(|p| p["role"] == "gateway").unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        eventually(10, || tcp(&lab, "w2", &w1, 8080)),
        "listeners up (a worker reaches them)"
    );
    assert!(!tcp(&lab, "c1", &w1, 8080), "before any grant: refused");

    // Bad grants: one clear line each, nothing changed.
    for (args, says) in [
        (
            vec!["client", "allow", "c1", "w1:8080", "nobody:22"],
            "no peer named `nobody`",
        ),
        (vec!["client", "allow", "c1", "w1:http"], "is not a grant"),
        (
            vec!["client", "allow", "w1", "w2:8080"],
            "is a worker, not a client",
        ),
    ] {
        let out = lab.proton("gw", &args, None);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(says),
            "{args:?}: {err}"
        );
    }
    assert_eq!(peers(&lab)["c1"]["allow"], serde_json::json!([]));

    // c1 (the lab's client, already up) is given w1:8080 and the kube API, live.
    let out = lab.proton(
        "gw",
        &["client", "allow", "c1", "w1:8080", "gateway:6443"],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        eventually(10, || tcp(&lab, "c1", &w1, 8080)),
        "c1 -> w1:8080 after the grant"
    );
    assert!(
        tcp(&lab, "c1", "10.7.7.1", 6443),
        "c1 -> the kube API, granted"
    );
    assert!(!tcp(&lab, "c1", &w1, 8081), "c1 -> w1:8081: another port");
    assert!(!tcp(&lab, "c1", &w2, 8080), "c1 -> w2:8080: another peer");
    assert!(
        !tcp(&lab, "c1", "10.7.7.1", 10250),
        "c1 -> the gateway's kubelet"
    );
    assert!(
        !ping(&lab, "c1", &w1),
        "c1 cannot ping w1: only the port is granted"
    );

    // A new client given a grant at `add` time.
    lab.ok("c2", &["ip", "link", "del", "wg0"]);
    let out = lab.proton(
        "gw",
        &["client", "add", "lap", "--no-qr", "--allow", "w2:8080"],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wg_quick_up(
        &lab,
        "c2",
        &client_config(&String::from_utf8_lossy(&out.stdout)),
    );
    assert!(
        eventually(10, || tcp(&lab, "c2", &w2, 8080)),
        "lap -> w2:8080, granted at add"
    );
    assert!(!tcp(&lab, "c2", &w1, 8080), "lap -> w1:8080: not granted");
    assert!(
        !tcp(&lab, "c2", "10.7.7.1", 6443),
        "lap -> the kube API: not granted"
    );

    // `peer list` and `status` say the grants.
    let c1 = &peers(&lab)["c1"];
    let gw_api = format!("{gw_name}:6443/tcp");
    assert_eq!(c1["allow"], serde_json::json!([gw_api, "w1:8080/tcp"]));
    assert_eq!(
        c1["reach"],
        format!("gateway DNS, 80/443, internet + {gw_api}, w1:8080/tcp")
    );
    let st = lab.proton("gw", &["status", "--json"], None);
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    let live = st["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "lap")
        .unwrap()["reach"]
        .clone();
    assert_eq!(live, "gateway DNS, 80/443, internet + w2:8080/tcp");

    // Taken away: refused again, the other grant stays.
    let out = lab.proton("gw", &["client", "deny", "c1", "w1:8080"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        eventually(10, || !tcp(&lab, "c1", &w1, 8080)),
        "c1 -> w1:8080 after deny"
    );
    assert!(tcp(&lab, "c1", "10.7.7.1", 6443), "c1 keeps the kube API");
    // A disabled client's grants open nothing; enabled, they are back.
    let lap = format!(
        "{} . {w2} . tcp . 8080",
        peers(&lab)["lap"]["address"].as_str().unwrap()
    );
    assert!(table(&lab).contains(&lap), "{}", table(&lab));
    let out = lab.proton("gw", &["client", "disable", "lap"], None);
    assert!(out.status.success());
    assert!(
        eventually(10, || !table(&lab).contains(&lap)),
        "a disabled client's grant is still in the table: {}",
        table(&lab)
    );
    let out = lab.proton("gw", &["client", "enable", "lap"], None);
    assert!(out.status.success());
    assert!(
        eventually(20, || tcp(&lab, "c2", &w2, 8080)),
        "lap -> w2:8080 once enabled again"
    );
}
