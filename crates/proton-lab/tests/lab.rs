//! The lab on this machine, for real: namespaces, veths, a netfilter masquerade, anchors.
//! Needs root, `ip`, `nsenter`/`unshare`, `nft` (or `iptables`) and `python3` (the UDP
//! echo); skipped otherwise. Each test uses its own lab name and removes it even when it
//! fails (the `Guard`).

use proton_lab::{Lab, LabConfig, LabError, NodeCommand};
use std::path::Path;
use std::process::Command;

fn can_run() -> bool {
    let root = rustix_free_is_root();
    let tools = ["ip", "nsenter", "unshare", "nft", "python3"]
        .iter()
        .all(|t| {
            Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .output()
                .is_ok_and(|o| o.status.success())
        });
    if !(root && tools) {
        eprintln!("skipping: needs root, iproute2, util-linux, nftables, python3");
    }
    root && tools
}

fn rustix_free_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn unique(tag: &str) -> String {
    format!("t{}{tag}", std::process::id())
}

/// Removes the lab when the test ends, pass or fail.
struct Guard(String);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = Lab::down(&self.0);
    }
}

/// A namespace the test made itself (a bystander the lab must not touch).
struct Netns(String);

impl Netns {
    fn add(name: String) -> Netns {
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap();
        assert!(ok.success(), "ip netns add {name}");
        Netns(name)
    }

    fn exists(&self) -> bool {
        Path::new("/run/netns").join(&self.0).exists()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn up(name: &str, workers: usize, clients: usize) -> (Guard, Lab) {
    let guard = Guard(name.to_string());
    let lab = Lab::up(&LabConfig::new(name, workers, clients), &mut |s| {
        eprintln!("{name}: {s}")
    })
    .unwrap_or_else(|e| panic!("lab up {name}: {e}"));
    (guard, lab)
}

fn ping(lab: &Lab, node: &str, target: &str, wait_secs: u32) -> bool {
    let w = wait_secs.to_string();
    lab.run(node, &["ping", "-n", "-c", "1", "-w", &w, target])
        .unwrap()
        .status
        .success()
}

const UDP_ECHO: &str = "import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', 5555))
while True:
    data, addr = s.recvfrom(100)
    s.sendto(addr[0].encode(), addr)
";

const UDP_ASK: &str = "import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
for _ in range(int(sys.argv[2])):
    s.sendto(b'who am i', (sys.argv[1], 5555))
    try:
        print(s.recv(100).decode())
        sys.exit(0)
    except socket.timeout:
        pass
sys.exit(1)
";

/// The source address the gateway's UDP echo saw, or None if no answer came.
fn udp_source_seen_by(lab: &Lab, from: &str, target: &str, tries: u32) -> Option<String> {
    let out = lab
        .exec(
            from,
            &NodeCommand::new(["python3", "-c", UDP_ASK, target, &tries.to_string()]),
        )
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Processes carrying `PROTON_LAB=<lab>` in their environment (anchors and everything
/// started in a node), found without trusting the lab's own records.
fn processes_mentioning(lab_name: &str) -> Vec<String> {
    let needle = format!("\0{}={lab_name}\0", proton_lab::LAB_ENV);
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(env) = std::fs::read(entry.path().join("environ")) {
            let env = format!("\0{}", String::from_utf8_lossy(&env));
            let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            let zombie = stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
            if env.contains(&needle) && !zombie {
                found.push(cmd);
            }
        }
    }
    found
}

fn namespaces_of(lab_name: &str) -> Vec<String> {
    let prefix = format!("{lab_name}-");
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

fn assert_gone(name: &str) {
    assert_eq!(namespaces_of(name), Vec::<String>::new(), "namespaces left");
    assert_eq!(
        processes_mentioning(name),
        Vec::<String>::new(),
        "processes left"
    );
    assert!(
        !Path::new("/run/proton-lab").join(name).exists(),
        "run dir left"
    );
}

#[test]
fn workers_reach_the_gateway_only_through_a_real_nat() {
    if !can_run() {
        return;
    }
    let (_g, mut lab) = up(&unique("nat"), 2, 1);
    let gw = lab.gateway_public_ip().to_string();
    let w1 = lab.address_of("w1").to_string();
    assert!(lab.lan_net().contains(&lab.address_of("w2")));
    assert!(lab.public_net().contains(&lab.address_of("c1")));

    assert!(ping(&lab, "w1", &gw, 5), "worker cannot ping the gateway");
    assert!(ping(&lab, "c1", &gw, 5), "client cannot ping the gateway");
    assert!(
        !ping(&lab, "gw", &w1, 1),
        "the gateway reached a private address"
    );
    let route = lab.run("gw", &["ip", "route", "get", &w1]).unwrap();
    assert!(
        !route.status.success(),
        "the gateway has a route into the LAN"
    );

    // The gateway sees the router's public address, not the worker's.
    lab.spawn(
        "gw",
        "udp-echo",
        &NodeCommand::new(["python3", "-c", UDP_ECHO]),
    )
    .unwrap();
    let seen = udp_source_seen_by(&lab, "w1", &gw, 40).expect("no UDP answer through the NAT");
    assert_eq!(seen, lab.nat_public_ip().to_string());
    assert_ne!(seen, w1);
    let seen = udp_source_seen_by(&lab, "c1", &gw, 40).expect("no UDP answer to the client");
    assert_eq!(seen, lab.address_of("c1").to_string());

    // Forwarding: on in the router only.
    for (node, want) in [("nat", "1"), ("gw", "0"), ("w1", "0"), ("c1", "0")] {
        let v = lab
            .exec_ok(
                node,
                &NodeCommand::new(["cat", "/proc/sys/net/ipv4/ip_forward"]),
            )
            .unwrap();
        assert_eq!(v.trim(), want, "ip_forward in {node}");
    }

    // Faults for the doctor/status tests: a blocked UDP port, a cut cable.
    lab.block_udp("gw", 5555).unwrap();
    assert_eq!(
        udp_source_seen_by(&lab, "w1", &gw, 2),
        None,
        "block_udp let UDP through"
    );
    lab.unblock_udp("gw").unwrap();
    lab.unblock_udp("gw").unwrap();
    assert!(udp_source_seen_by(&lab, "w1", &gw, 40).is_some());
    lab.set_link("w1", false).unwrap();
    assert!(
        !ping(&lab, "w1", &gw, 1),
        "a cut worker still reaches the gateway"
    );
    assert!(ping(&lab, "w2", &gw, 5), "cutting w1 cut w2 too");
    lab.set_link("w1", true).unwrap();
    assert!(ping(&lab, "w1", &gw, 10), "the link did not come back");

    let status = lab.status();
    assert!(status.healthy);
    assert!(
        status
            .processes
            .iter()
            .any(|p| p.name == "udp-echo" && p.alive)
    );
    let table = status.to_string();
    assert!(table.contains("udp-echo") && table.contains(&gw), "{table}");
    let json: serde_json::Value = serde_json::from_str(&status.to_json()).unwrap();
    assert_eq!(json["nodes"].as_array().unwrap().len(), 6);

    // Supervision: a killed process shows dead; the name can be started again.
    lab.signal("gw", "udp-echo", proton_lab::Signal::Kill)
        .unwrap();
    let pid = lab.process("gw", "udp-echo").unwrap().id;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while lab.is_running("gw", "udp-echo") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!lab.status().processes[0].alive);
    let again = lab
        .spawn(
            "gw",
            "udp-echo",
            &NodeCommand::new(["python3", "-c", UDP_ECHO]),
        )
        .unwrap();
    assert_ne!(again.id, pid);
    assert!(matches!(
        lab.spawn("gw", "udp-echo", &NodeCommand::new(["sleep", "9"])),
        Err(LabError::ProcessRunning { .. })
    ));
}

#[test]
fn each_node_has_its_own_run_directory() {
    if !can_run() {
        return;
    }
    let (_g, lab) = up(&unique("iso"), 2, 0);
    let probe = format!("/run/wireguard/probe-{}.sock", std::process::id());
    lab.exec_ok("w1", &NodeCommand::new(["touch", &probe]))
        .unwrap();
    let exists = |node: &str| {
        lab.run(node, &["test", "-e", &probe])
            .unwrap()
            .status
            .success()
    };
    assert!(exists("w1"));
    assert!(!exists("w2"), "w2 sees w1's /run/wireguard");
    assert!(!exists("gw"), "gw sees w1's /run/wireguard");
    assert!(
        !Path::new(&probe).exists(),
        "the host sees w1's /run/wireguard"
    );
    assert!(lab.node_path("w1", &probe).unwrap().exists());
    assert!(!lab.node_path("w2", &probe).unwrap().exists());

    // /run/proton likewise; the node root is shared with the host on purpose.
    lab.exec_ok(
        "gw",
        &NodeCommand::new(["sh", "-c", "echo gw > /run/proton/who"]),
    )
    .unwrap();
    assert!(
        !lab.run("w1", &["test", "-e", "/run/proton/who"])
            .unwrap()
            .status
            .success()
    );
    let root = lab.node_root("w1");
    let marker = root.join("marker");
    let cmd = NodeCommand::new(["sh", "-c", "printf %s \"$WHO\" > \"$1\"", "sh"]).env("WHO", "w1");
    let cmd = NodeCommand::new(
        cmd.argv()
            .iter()
            .cloned()
            .chain([marker.display().to_string()]),
    )
    .env("WHO", "w1");
    lab.exec_ok("w1", &cmd).unwrap();
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "w1");
    let input = lab
        .exec_ok("w2", &NodeCommand::new(["cat"]).stdin("from stdin"))
        .unwrap();
    assert_eq!(input, "from stdin");
    // Each node has only its own links.
    let links = lab
        .exec_ok("w1", &NodeCommand::new(["ip", "-br", "link"]))
        .unwrap();
    assert!(links.contains("eth0") && !links.contains("wan0"), "{links}");
}

#[test]
fn down_removes_everything_it_made_and_nothing_else() {
    if !can_run() {
        return;
    }
    let name = unique("down");
    let bystander = Netns::add(format!("{name}x-keep"));
    let (_g, mut lab) = up(&name, 1, 1);
    // A look-alike name the lab must not take for its own.
    assert!(!namespaces_of(&name).contains(&bystander.0));
    lab.spawn(
        "w1",
        "sleeper",
        &NodeCommand::new(["sh", "-c", "sleep 600 & sleep 600"]),
    )
    .unwrap();
    let anchors: Vec<_> = lab.nodes().iter().filter_map(|n| n.anchor).collect();
    assert_eq!(anchors.len(), 5);
    assert!(!processes_mentioning(&name).is_empty());
    assert!(matches!(
        Lab::up(&LabConfig::new(name.as_str(), 1, 0), &mut |_| {}),
        Err(LabError::Exists(_))
    ));

    Lab::down(&name).unwrap();
    assert_gone(&name);
    for a in anchors {
        assert!(!Path::new(&format!("/proc/{}", a.pid)).exists() || !proton_lab_alive(a));
    }
    assert!(bystander.exists(), "down removed a bystander");
    assert!(matches!(Lab::down(&name), Err(LabError::Missing(_))));
}

fn proton_lab_alive(id: proton_lab::ProcId) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", id.pid)).is_ok_and(|s| {
        let rest = s.rsplit_once(')').map(|r| r.1).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        f.get(19) == Some(&id.start_time.to_string().as_str()) && f[0] != "Z"
    })
}

#[test]
fn down_works_on_a_half_removed_lab() {
    if !can_run() {
        return;
    }
    let name = unique("half");
    let (_g, lab) = up(&name, 1, 0);
    let w1 = lab.node("w1").unwrap().netns.clone();
    Command::new("ip")
        .args(["netns", "del", &w1])
        .status()
        .unwrap();
    let status = lab.status();
    assert!(!status.healthy);
    let w1 = status.nodes.iter().find(|n| n.name == "w1").unwrap();
    assert!(!w1.netns_exists);
    assert!(status.to_string().contains("DAMAGED"));
    Lab::down(&name).unwrap();
    assert_gone(&name);
}

#[test]
fn a_failed_up_leaves_nothing_behind() {
    if !can_run() {
        return;
    }
    // Steps: 1 internet, 2 gateway, 3 NAT, 4 w1, 5 c1, 6 ready.
    for k in [1, 2, 4, 6] {
        let name = unique(&format!("fail{k}"));
        let _g = Guard(name.clone());
        let cfg = LabConfig::new(name.as_str(), 1, 1);
        match Lab::up_failing_at(&cfg, Some(k), &mut |_| {}) {
            Err(LabError::Injected(at)) => assert_eq!(at, k),
            other => panic!("step {k}: expected the injected failure, got {other:?}"),
        }
        assert_gone(&name);
    }
    // A real failure: one of the lab's namespace names is taken by someone else.
    let name = unique("taken");
    let _g = Guard(name.clone());
    let taken = Netns::add(format!("{name}-w1"));
    let result = Lab::up(&LabConfig::new(name.as_str(), 1, 0), &mut |_| {});
    assert!(
        matches!(result, Err(LabError::NamespaceTaken(ref n)) if *n == taken.0),
        "{result:?}"
    );
    assert!(taken.exists());
    drop(taken);
    assert_gone(&name);
}

#[test]
fn two_labs_coexist() {
    if !can_run() {
        return;
    }
    let (ga, a) = up(&unique("a"), 1, 0);
    let (_gb, b) = up(&unique("b"), 1, 0);
    assert_ne!(a.public_net(), b.public_net());
    assert_ne!(a.lan_net(), b.lan_net());
    assert!(ping(&a, "w1", &a.gateway_public_ip().to_string(), 5));
    assert!(ping(&b, "w1", &b.gateway_public_ip().to_string(), 5));
    // Labs share nothing: a's worker cannot reach b's gateway.
    assert!(!ping(&a, "w1", &b.gateway_public_ip().to_string(), 1));
    let a_name = a.name().to_string();
    drop(ga);
    assert_gone(&a_name);
    assert!(b.status().healthy);
    assert!(ping(&b, "w1", &b.gateway_public_ip().to_string(), 5));
}

#[test]
fn bad_configs_are_refused_before_touching_anything() {
    assert!(matches!(
        Lab::up(&LabConfig::new("Bad_Name", 1, 0), &mut |_| {}),
        Err(LabError::BadName(_))
    ));
    assert!(matches!(
        Lab::up(&LabConfig::new("big", 201, 0), &mut |_| {}),
        Err(LabError::TooMany {
            field: "workers",
            ..
        })
    ));
    let e = Lab::load("no-such-lab-here").unwrap_err();
    assert!(
        e.to_string()
            .contains("proton lab up --name no-such-lab-here"),
        "{e}"
    );
}
