use super::*;
use proton_core::keys::PrivateKey;
use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;

fn key() -> proton_core::keys::PublicKey {
    PrivateKey::generate().public_key()
}

fn name(s: &str) -> PeerName {
    s.parse().unwrap()
}

fn fresh(cidr: &str) -> (tempfile::TempDir, Root, Cidr) {
    let dir = tempfile::tempdir().unwrap();
    let root = Root::new(dir.path());
    let cidr: Cidr = cidr.parse().unwrap();
    let mut s = Store::open(&root, &cidr).unwrap();
    s.add_gateway("proton", key()).unwrap();
    (dir, root, cidr)
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Every row of every table, for "nothing changed" checks.
fn dump(s: &Store) -> String {
    let mut out = String::new();
    for table in ["peers", "invitations", "audit", "meta"] {
        let mut stmt = s.conn().prepare(&format!("SELECT * FROM {table}")).unwrap();
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                Ok((0..n)
                    .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                    .collect::<Vec<_>>()
                    .join("|"))
            })
            .unwrap();
        for r in rows {
            out.push_str(&r.unwrap());
            out.push('\n');
        }
    }
    out
}

#[test]
fn files_are_private_and_data_survives_reopen() {
    let (_d, root, cidr) = fresh("10.7.7.0/24");
    let mut s = Store::open_existing(&root, &cidr).unwrap();
    s.add_peer(&name("laptop"), Role::Client, key(), "test")
        .unwrap();
    let db = root.path(DB_PATH);
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(db.parent().unwrap()), 0o700);
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    assert!(wal.exists(), "WAL mode is on");
    assert_eq!(mode(&wal), 0o600, "SQLite gives the WAL the DB's mode");
    drop(s);
    let s = Store::open_existing(&root, &cidr).unwrap();
    let names: Vec<_> = s
        .list_peers(false)
        .unwrap()
        .into_iter()
        .map(|p| p.name.to_string())
        .collect();
    assert_eq!(names, ["proton", "laptop"]);
    assert_eq!(s.gateway().unwrap().unwrap().address, cidr.gateway());
    s.check().unwrap();
}

#[test]
fn a_missing_db_or_a_newer_schema_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = Root::new(dir.path());
    let cidr: Cidr = "10.7.7.0/24".parse().unwrap();
    let e = Store::open_existing(&root, &cidr)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("proton init"), "{e}");
    drop(Store::open(&root, &cidr).unwrap());
    let c = rusqlite::Connection::open(root.path(DB_PATH)).unwrap();
    c.pragma_update(None, "user_version", 99).unwrap();
    drop(c);
    let e = Store::open(&root, &cidr).err().unwrap().to_string();
    assert!(e.contains("upgrade proton"), "{e}");
}

#[test]
fn fifty_concurrent_adds_get_fifty_distinct_addresses() {
    let (_d, root, cidr) = fresh("10.7.7.0/24");
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let (root, cidr) = (root.clone(), cidr);
            std::thread::spawn(move || {
                let mut s = Store::open(&root, &cidr).unwrap();
                s.add_peer(&name(&format!("w{i}")), Role::Worker, key(), "test")
                    .unwrap()
            })
        })
        .collect();
    let peers: Vec<Peer> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let addrs: HashSet<_> = peers.iter().map(|p| p.address).collect();
    assert_eq!(addrs.len(), 50);
    assert!(addrs.iter().all(|a| cidr.is_assignable(*a)));
    let s = Store::open(&root, &cidr).unwrap();
    assert_eq!(s.active_peers().unwrap().len(), 50);
    assert_eq!(s.generation().unwrap(), 51, "gateway + 50 changes");
}

#[test]
fn exhaustion_is_clear_and_removed_addresses_are_reused() {
    let (_d, root, cidr) = fresh("10.0.0.0/29");
    let mut s = Store::open(&root, &cidr).unwrap();
    for i in 0..5 {
        s.add_peer(&name(&format!("p{i}")), Role::Client, key(), "t")
            .unwrap();
    }
    let e = s
        .add_peer(&name("one-more"), Role::Client, key(), "t")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("10.0.0.0/29 is full") && e.contains("5 addresses"),
        "{e}"
    );
    let gone = s.remove_peer("p2", "t").unwrap();
    let again = s.add_peer(&name("p2"), Role::Client, key(), "t").unwrap();
    assert_eq!(again.address, gone.address, "a released address is reused");
}

#[test]
fn names_and_keys_are_unique_and_validated() {
    let (_d, root, cidr) = fresh("10.7.7.0/24");
    let mut s = Store::open(&root, &cidr).unwrap();
    let k = key();
    s.add_peer(&name("a"), Role::Worker, k, "t").unwrap();
    assert!(matches!(
        s.add_peer(&name("a"), Role::Worker, key(), "t"),
        Err(StoreError::NameTaken(_))
    ));
    assert!(matches!(
        s.add_peer(&name("b"), Role::Worker, k, "t"),
        Err(StoreError::KeyTaken(_))
    ));
    assert!("Bad_Name".parse::<PeerName>().is_err());
    assert!(matches!(
        s.remove_peer("proton", "t"),
        Err(StoreError::IsGateway(_))
    ));
    assert!(matches!(
        s.remove_peer("nope", "t"),
        Err(StoreError::NotFound(_))
    ));
    s.rename_peer("a", &name("c"), "t").unwrap();
    assert!(s.peer_by_name("a").unwrap().is_none());
    assert_eq!(s.peer_by_key(&k).unwrap().unwrap().name.as_str(), "c");
}

#[test]
fn redeem_works_once_and_refusals_change_nothing() {
    let (_d, root, cidr) = fresh("10.7.7.0/24");
    let mut s = Store::open(&root, &cidr).unwrap();
    let t = now();
    let (peer, _) = s
        .reserve_invitation(&name("home-1"), Role::Worker, key(), "h1", t + 3600, "t")
        .unwrap();
    assert_eq!(peer.state, PeerState::Invited);
    let (_expired, _) = s
        .reserve_invitation(&name("home-2"), Role::Worker, key(), "h2", t - 1, "t")
        .unwrap();

    let before = dump(&s);
    assert!(matches!(
        s.redeem_invitation("nope", None, key(), t, "t"),
        Err(RedeemError::Unknown)
    ));
    assert!(matches!(
        s.redeem_invitation("h2", None, key(), t, "t"),
        Err(RedeemError::Expired)
    ));
    let other = "10.7.7.200".parse().unwrap();
    assert!(matches!(
        s.redeem_invitation("h1", Some(other), key(), t, "t"),
        Err(RedeemError::WrongAddress)
    ));
    assert_eq!(dump(&s), before, "refused redeems change nothing");

    let mine = key();
    let joined = s
        .redeem_invitation("h1", Some(peer.address), mine, t, "t")
        .unwrap();
    assert_eq!(
        (joined.public_key, joined.state, joined.address),
        (mine, PeerState::Active, peer.address)
    );
    let before = dump(&s);
    assert!(matches!(
        s.redeem_invitation("h1", None, key(), t, "t"),
        Err(RedeemError::AlreadyUsed)
    ));
    assert_eq!(dump(&s), before);
}

#[test]
fn twenty_concurrent_redeemers_exactly_one_wins() {
    let (_d, root, cidr) = fresh("10.7.7.0/24");
    let mut s = Store::open(&root, &cidr).unwrap();
    s.reserve_invitation(&name("w"), Role::Worker, key(), "race", now() + 60, "t")
        .unwrap();
    let wins: usize = (0..20)
        .map(|_| {
            let (root, cidr) = (root.clone(), cidr);
            std::thread::spawn(move || {
                let mut s = Store::open(&root, &cidr).unwrap();
                s.redeem_invitation("race", None, key(), now(), "t").is_ok() as usize
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .sum();
    assert_eq!(wins, 1);
}

#[test]
fn sweep_revokes_expired_invitees_and_frees_their_addresses() {
    let (_d, root, cidr) = fresh("10.7.7.0/24");
    let mut s = Store::open(&root, &cidr).unwrap();
    let t = now();
    let (old, _) = s
        .reserve_invitation(&name("old"), Role::Worker, key(), "o", t + 10, "t")
        .unwrap();
    s.reserve_invitation(&name("new"), Role::Worker, key(), "n", t + 1000, "t")
        .unwrap();
    let swept = s.sweep_expired(t + 11, "daemon").unwrap();
    assert_eq!(
        swept.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["old"]
    );
    assert!(s.peer_by_name("old").unwrap().is_none());
    let reuse = s.add_peer(&name("x"), Role::Client, key(), "t").unwrap();
    assert_eq!(reuse.address, old.address);
    assert!(
        s.sweep_expired(t + 11, "daemon").unwrap().is_empty(),
        "sweeping twice is a no-op"
    );
}

#[test]
fn every_change_is_audited() {
    let (_d, root, cidr) = fresh("10.7.7.0/24");
    let mut s = Store::open(&root, &cidr).unwrap();
    s.add_peer(&name("a"), Role::Client, key(), "alice")
        .unwrap();
    s.rename_peer("a", &name("b"), "alice").unwrap();
    s.remove_peer("b", "bob").unwrap();
    let log = s.audit_log(10).unwrap();
    let actions: Vec<_> = log
        .iter()
        .map(|e| (e.action.as_str(), e.actor.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("peer.remove", "bob"),
            ("peer.rename", "alice"),
            ("peer.add", "alice"),
            ("gateway.create", "init")
        ]
    );
}

#[test]
fn a_crash_between_reserve_and_redeem_leaves_a_usable_db() {
    let (_d, root, cidr) = fresh("10.7.7.0/24");
    let mut s = Store::open(&root, &cidr).unwrap();
    s.reserve_invitation(&name("w"), Role::Worker, key(), "crash", now() + 60, "t")
        .unwrap();
    // Simulate a crash: the process goes away without closing the connection cleanly.
    std::mem::forget(s);
    let mut s = Store::open(&root, &cidr).unwrap();
    s.check().unwrap();
    s.redeem_invitation("crash", None, key(), now(), "t")
        .unwrap();
}
