//! Joining under stress and with the wrong invitation, in the lab (root; skipped
//! otherwise): 50 workers behind the NAT join at the same moment; an invitation made by
//! another gateway, or already used by another machine, is refused with one line and
//! changes nothing on either side; a re-run on a machine that half-finished its join
//! finishes it.

use proton_test_support::lab::{LabGuard, output_with_stdin, root_and_tools, wg_dump};
use std::collections::{HashMap, HashSet};

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_proton");

/// What the gateway's state and live device say: (name, address, state, public key)
/// from the DB, and (public key, allowed IPs) from `wg show dump`.
fn gateway_state(lab: &LabGuard) -> (serde_json::Value, HashSet<(String, String)>) {
    let out = lab.proton("gw", &["peer", "list", "--json"], None);
    assert!(out.status.success());
    let peers: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let live = wg_dump(lab)
        .into_iter()
        .map(|p| (p[0].clone(), p[3].clone()))
        .collect();
    (peers, live)
}

/// Every file under `dir`, with its contents.
fn tree(dir: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![std::path::PathBuf::from(dir)];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((
                    path.display().to_string(),
                    std::fs::read(&path).unwrap_or_default(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// `wg pubkey` of a node's saved key (the real wireguard-tools derive it).
fn node_public_key(lab: &LabGuard, worker: &str) -> String {
    let key = std::fs::read_to_string(format!("{}/etc/proton/node.key", lab.root(worker))).unwrap();
    let out = output_with_stdin(std::process::Command::new("wg").arg("pubkey"), &key);
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn fifty_workers_join_at_once_and_each_gets_its_own_address_and_key() {
    if !root_and_tools() {
        return;
    }
    const N: usize = 50;
    let lab = LabGuard::up(BIN, "tj", 0, N, 0);
    let workers: Vec<String> = (1..=N).map(|i| format!("w{i}")).collect();
    let invitations: Vec<String> = workers.iter().map(|w| lab.invite(w)).collect();

    // All 50 `proton join`s start together, each behind the NAT with only its string.
    let lab_ref = &lab;
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = workers
            .iter()
            .zip(&invitations)
            .map(|(w, inv)| {
                s.spawn(move || {
                    lab_ref.proton(
                        w,
                        &["join", "--backend", "userspace", "--timeout", "120"],
                        Some(inv),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (w, out) in workers.iter().zip(&results) {
        assert!(
            out.status.success(),
            "{w} failed to join: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // 50 distinct addresses, as each worker wrote them into its tunnel config.
    let mut by_worker = HashMap::new();
    for w in &workers {
        let conf =
            std::fs::read_to_string(format!("{}/etc/proton/agent.conf", lab.root(w))).unwrap();
        let parsed = proton_core::wgconf::WgQuickConfig::parse(&conf).unwrap();
        by_worker.insert(w.clone(), parsed.interface.addresses[0].addr().to_string());
    }
    let distinct: HashSet<_> = by_worker.values().collect();
    assert_eq!(distinct.len(), N, "addresses: {by_worker:?}");

    // The gateway agrees: every worker active at that address, and its live device holds
    // each worker's own key (no throw-away key left) for exactly that address.
    let (peers, live) = gateway_state(&lab);
    let peers: Vec<_> = peers
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["role"] == "worker")
        .collect();
    assert_eq!(peers.len(), N, "{peers:?}");
    for w in &workers {
        let p = peers.iter().find(|p| p["name"] == w.as_str()).unwrap();
        assert_eq!(p["state"], "active", "{p}");
        assert_eq!(p["address"], by_worker[w].as_str(), "{p}");
        let key = node_public_key(&lab, w);
        assert_eq!(p["public_key"], key.as_str(), "{p}");
        assert!(
            live.contains(&(key.clone(), format!("{}/32", by_worker[w]))),
            "{w}'s own key is on the live device"
        );
    }
    assert_eq!(
        live.len(),
        N,
        "only the workers' own keys are live: {live:?}"
    );
}

#[test]
fn wrong_gateway_and_used_invitations_change_nothing_and_a_rerun_finishes_a_join() {
    if !root_and_tools() {
        return;
    }
    let lab = LabGuard::up(BIN, "tw", 1, 1, 0);
    let before = gateway_state(&lab);
    let w2_root = lab.root("w2");
    let w2_before = tree(&w2_root);

    // A valid invitation from another gateway that claims the lab gateway's endpoint:
    // its key does not match, so no handshake ever comes back.
    let other = tempfile::tempdir().unwrap();
    let other_root = other.path().to_str().unwrap();
    let endpoint = format!("{}:51820", lab.public_ip(1));
    let out = std::process::Command::new(BIN)
        .args(["--root", other_root, "init", "--endpoint", &endpoint])
        .output()
        .unwrap();
    assert!(out.status.success());
    let foreign = {
        let out = std::process::Command::new(BIN)
            .args(["--root", other_root, "invite", "w3", "--no-qr"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.starts_with("proton1-"))
            .unwrap()
            .to_string()
    };
    let out = lab.proton("w2", &["join", "--timeout", "4"], Some(&foreign));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a foreign invitation must not join");
    let errors: Vec<_> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains("no WireGuard handshake"), "{err}");
    assert!(
        err.contains("another gateway"),
        "the hint names the cause: {err}"
    );
    assert_eq!(tree(&w2_root), w2_before, "the worker wrote nothing");
    assert_eq!(
        gateway_state(&lab),
        before,
        "the gateway's state is unchanged"
    );

    // w2 joins for real; the same invitation from another machine (a fresh root in the
    // same namespace) is refused the same way and changes nothing.
    let invitation = lab.invite("w2");
    let out = lab.proton("w2", &["join", "--backend", "userspace"], Some(&invitation));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after_join = gateway_state(&lab);
    let thief = format!("/run/proton-lab/{}/w2/thief", lab.0);
    std::fs::create_dir_all(&thief).unwrap();
    let out = lab.proton_at(
        "w2",
        &thief,
        &["join", "--interface", "wg9", "--timeout", "4"],
        Some(&invitation),
    );
    assert!(!out.status.success(), "an invitation works once");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error: ")).count(),
        1,
        "{err}"
    );
    assert!(tree(&thief).is_empty(), "the second machine wrote nothing");
    assert_eq!(gateway_state(&lab), after_join);

    // A join that stopped after the redeem (here: its tunnel config lost) is finished by
    // running the same command again, with the same key and address.
    let joins = || {
        let out = lab.proton("gw", &["status", "--json"], None);
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        status["counters"]["joins"].as_u64().unwrap()
    };
    let joins_before = joins();
    let conf = format!("{}/etc/proton/agent.conf", w2_root);
    let first = std::fs::read_to_string(&conf).unwrap();
    std::fs::remove_file(&conf).unwrap();
    let out = lab.proton("w2", &["join", "--backend", "userspace"], Some(&invitation));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("finishing the job"), "{err}");
    let again = std::fs::read_to_string(&conf).unwrap();
    let parse = |t: &str| proton_core::wgconf::WgQuickConfig::parse(t).unwrap();
    assert_eq!(
        parse(&again).interface.addresses,
        parse(&first).interface.addresses
    );
    assert_eq!(
        parse(&again).interface.private_key.map(|k| k.public_key()),
        parse(&first).interface.private_key.map(|k| k.public_key())
    );
    assert_eq!(
        gateway_state(&lab),
        after_join,
        "the re-run changed nothing"
    );
    assert_eq!(joins(), joins_before, "a repeated answer is not a new join");
}
