//! `proton backup` / `proton restore` on temp roots (no root privileges, no network):
//! one 0600 archive with online-consistent copies of the state DB and of K3s's SQLite
//! datastore, restored on a "new machine" with the same gateway identity; bad archives
//! and an existing gateway change nothing.
//!
//! K3s's datastore is an upstream-shaped kine file: the table and indexes are those of
//! k3s-io/kine pkg/drivers/sqlite/sqlite.go (`schema`), identical from kine v0.14.1 to
//! v0.14.10 (K3s v1.34.2+k3s1, released in November 2025, pins a kine v0.14.x of that
//! range; its go.mod could not be read here), opened as K3s opens it
//! (`?_journal=WAL&cache=shared&_busy_timeout=30000&_txlock=immediate`: WAL journal).
//! Rows are shaped like kine's (`name` = key, `created`, `deleted`, `create_revision`,
//! `prev_revision`, `lease`, `value`, `old_value`).

use proton_test_support::cli::{gateway, proton};
use rusqlite::Connection;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_proton");

/// kine's SQLite schema, verbatim (k3s-io/kine@v0.14.6 pkg/drivers/sqlite/sqlite.go).
const KINE_SCHEMA: [&str; 6] = [
    "CREATE TABLE IF NOT EXISTS kine
			(
				id INTEGER PRIMARY KEY AUTOINCREMENT,
				name INTEGER,
				created INTEGER,
				deleted INTEGER,
				create_revision INTEGER,
				prev_revision INTEGER,
				lease INTEGER,
				value BLOB,
				old_value BLOB
			)",
    "CREATE INDEX IF NOT EXISTS kine_name_index ON kine (name)",
    "CREATE INDEX IF NOT EXISTS kine_name_id_index ON kine (name,id)",
    "CREATE INDEX IF NOT EXISTS kine_id_deleted_index ON kine (id,deleted)",
    "CREATE INDEX IF NOT EXISTS kine_prev_revision_index ON kine (prev_revision)",
    "CREATE UNIQUE INDEX IF NOT EXISTS kine_name_prev_revision_uindex ON kine (name, prev_revision)",
];

const DATASTORE: &str = "var/lib/rancher/k3s/server/db/state.db";
const TOKEN: &str = "var/lib/rancher/k3s/server/token";
/// K3s's server token format: K10<sha256 of the cluster CA>::server:<secret>.
const TOKEN_TEXT: &str = "K10a3c5f6a8e4b1d2c3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8::server:5f2b9c0e7d1a4b3c8e6f\n";

/// A K3s datastore as kine leaves it while K3s runs: WAL mode, some rows committed to the
/// WAL and not checkpointed into the main file (a file copy of state.db would lose them).
/// The connection is returned open: K3s is "running".
fn k3s_datastore(root: &Path, keys: &[&str]) -> Connection {
    let path = root.join(DATASTORE);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let c = Connection::open(&path).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    for s in KINE_SCHEMA {
        c.execute(s, []).unwrap();
    }
    c.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    for (i, k) in keys.iter().enumerate() {
        c.execute(
            "INSERT INTO kine(name, created, deleted, create_revision, prev_revision, lease, value, old_value) \
             VALUES (?1, 1, 0, ?2, 0, 0, ?3, NULL)",
            rusqlite::params![k, i as i64 + 1, format!("{{\"kind\":\"Secret\",\"n\":{i}}}").as_bytes()],
        )
        .unwrap();
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(root.join(TOKEN), TOKEN_TEXT).unwrap();
    std::fs::set_permissions(root.join(TOKEN), std::fs::Permissions::from_mode(0o600)).unwrap();
    c
}

fn kine_keys(path: &Path) -> Vec<String> {
    let c = Connection::open(path).unwrap();
    let mut s = c.prepare("SELECT name FROM kine ORDER BY id").unwrap();
    s.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(root: &Path, args: &[&str]) -> String {
    let o = proton(BIN, root, args);
    assert!(o.status.success(), "{args:?}: {}", text(&o.stderr));
    text(&o.stdout)
}

/// Every file under `dir` with its bytes and mode.
fn tree(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
    fn walk(d: &Path, out: &mut BTreeMap<PathBuf, (Vec<u8>, u32)>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                walk(&p, out);
            } else {
                out.insert(
                    p.clone(),
                    (std::fs::read(&p).unwrap(), m.permissions().mode()),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, &mut out);
    out
}

#[test]
fn a_backup_restored_on_a_new_machine_is_the_same_gateway() {
    let old = gateway(BIN);
    ok(old.path(), &["client", "add", "phone"]);
    let invite = ok(old.path(), &["invite", "home-1", "--no-qr"]);
    assert!(!invite.is_empty());
    let running = k3s_datastore(
        old.path(),
        &[
            "/registry/secrets/kube-system/k3s-serving",
            "/registry/minions/proton",
        ],
    );
    // A write K3s has not committed yet is not in the backup, and does not block it.
    running.execute_batch("BEGIN IMMEDIATE; INSERT INTO kine(name, created, deleted, create_revision, prev_revision, lease, value) VALUES ('/registry/uncommitted', 1, 0, 9, 0, 0, x'00');").unwrap();

    let out_dir = tempfile::tempdir().unwrap();
    let file = out_dir.path().join("gw.backup");
    let f = file.to_str().unwrap();
    let said = ok(old.path(), &["backup", f]);
    assert!(
        said.contains("/var/lib/rancher/k3s/server/db/state.db"),
        "{said}"
    );
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    running.execute_batch("COMMIT").unwrap();
    // Never overwrites.
    let again = proton(BIN, old.path(), &["backup", f]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again.stderr).starts_with("error: "),
        "{}",
        text(&again.stderr)
    );

    // A new machine: nothing there yet.
    let new = tempfile::tempdir().unwrap();
    let said = ok(new.path(), &["restore", f, "--public-ip", "198.51.100.20"]);
    assert!(said.contains("Gateway `proton` restored"), "{said}");
    for rel in ["etc/proton/gateway.key", TOKEN] {
        assert_eq!(
            std::fs::read(old.path().join(rel)).unwrap(),
            std::fs::read(new.path().join(rel)).unwrap(),
            "{rel}"
        );
    }
    for rel in [
        "etc/proton/gateway.key",
        TOKEN,
        DATASTORE,
        "var/lib/proton/proton.db",
    ] {
        let mode = std::fs::metadata(new.path().join(rel))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{rel}");
    }
    // K3s's rows, including those only in the live WAL; not the uncommitted one.
    assert_eq!(
        kine_keys(&new.path().join(DATASTORE)),
        [
            "/registry/secrets/kube-system/k3s-serving",
            "/registry/minions/proton"
        ]
    );
    // The same identity and peers: the phone's config from the new machine names the
    // same gateway public key, the peer list is the old one.
    let peers = |root: &Path| ok(root, &["peer", "list", "--json"]);
    assert_eq!(peers(old.path()), peers(new.path()));
    let pubkey = |root: &Path| {
        let conf = ok(root, &["config", "wireguard"]);
        conf.lines()
            .find(|l| l.starts_with("PrivateKey"))
            .unwrap()
            .to_owned()
    };
    assert_eq!(pubkey(old.path()), pubkey(new.path()));
    let spec = std::fs::read_to_string(new.path().join("etc/proton/proton.toml")).unwrap();
    assert!(spec.contains("public_ip = \"198.51.100.20\""), "{spec}");
    // The old gateway's endpoint was its address (203.0.113.5): on the new machine it
    // is the new one, so what it hands out from now on points here.
    assert!(
        spec.contains("endpoint = \"198.51.100.20:51820\""),
        "{spec}"
    );
    assert!(
        said.contains("gateway.endpoint was the address 203.0.113.5"),
        "{said}"
    );
    let conf = ok(new.path(), &["client", "add", "laptop", "--no-qr"]);
    assert!(
        conf.contains("Endpoint = 198.51.100.20:51820"),
        "a new client gets the new address: {conf}"
    );
    let old_spec = std::fs::read_to_string(old.path().join("etc/proton/proton.toml")).unwrap();
    let others = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !l.starts_with("public_ip") && !l.starts_with("endpoint"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        others(&spec),
        others(&old_spec),
        "only public_ip and endpoint changed"
    );

    // Restoring over a gateway: refused with one line, nothing touched.
    let before = tree(new.path());
    let o = proton(BIN, new.path(), &["restore", f]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.starts_with("error: a gateway already exists here"),
        "{err}"
    );
    assert_eq!(tree(new.path()), before);
    // --force: the old files are set aside, not deleted.
    ok(new.path(), &["restore", f, "--force"]);
    let aside = std::fs::read_dir(new.path().join("etc/proton"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".replaced-")
        })
        .count();
    assert!(aside >= 2, "spec and key set aside");
}

#[test]
fn a_damaged_or_foreign_archive_changes_nothing() {
    let old = gateway(BIN);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b");
    ok(old.path(), &["backup", file.to_str().unwrap()]);
    let bytes = std::fs::read(&file).unwrap();

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", bytes[..bytes.len() / 2].to_vec()),
        ("not an archive", b"hello".to_vec()),
        ("a flipped byte in the DB", {
            // Corrupt a byte inside the database entry's data.
            let mut b = bytes.clone();
            let at = b
                .windows(16)
                .position(|w| w == b"SQLite format 3\0")
                .unwrap();
            for x in &mut b[at + 100..at + 4096] {
                *x ^= 0x5a;
            }
            b
        }),
    ];
    for (what, data) in cases {
        let bad = dir.path().join("bad");
        std::fs::write(&bad, &data).unwrap();
        let fresh = tempfile::tempdir().unwrap();
        let o = proton(BIN, fresh.path(), &["restore", bad.to_str().unwrap()]);
        assert!(!o.status.success(), "{what}");
        let err = text(&o.stderr);
        assert!(err.starts_with("error: "), "{what}: {err}");
        assert_eq!(
            err.lines().filter(|l| l.starts_with("error")).count(),
            1,
            "{err}"
        );
        assert!(
            tree(fresh.path()).is_empty(),
            "{what}: something was written"
        );
    }
}

#[test]
fn an_encrypted_backup_needs_its_passphrase_and_hides_the_key() {
    let old = gateway(BIN);
    let dir = tempfile::tempdir().unwrap();
    let pass = dir.path().join("pass");
    std::fs::write(&pass, "correct horse battery staple\n").unwrap();
    let file = dir.path().join("b.age");
    let f = file.to_str().unwrap();
    let said = ok(
        old.path(),
        &["backup", f, "--passphrase-file", pass.to_str().unwrap()],
    );
    assert!(said.contains("encrypted"), "{said}");
    let bytes = std::fs::read(&file).unwrap();
    assert!(bytes.starts_with(b"age-encryption.org/v1\n-> scrypt "));
    let key = std::fs::read_to_string(old.path().join("etc/proton/gateway.key")).unwrap();
    assert!(
        !bytes.windows(20).any(|w| w == &key.as_bytes()[..20]),
        "the key is readable in the archive"
    );
    assert!(!bytes.windows(15).any(|w| w == b"SQLite format 3"));

    // No passphrase, or a wrong one: one error line, nothing written.
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "incorrect\n").unwrap();
    for args in [
        vec!["restore", f],
        vec!["restore", f, "--passphrase-file", wrong.to_str().unwrap()],
    ] {
        let fresh = tempfile::tempdir().unwrap();
        let o = proton(BIN, fresh.path(), &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = text(&o.stderr);
        assert!(err.starts_with("error: "), "{err}");
        assert!(tree(fresh.path()).is_empty(), "{args:?} wrote something");
    }
    let fresh = tempfile::tempdir().unwrap();
    ok(
        fresh.path(),
        &["restore", f, "--passphrase-file", pass.to_str().unwrap()],
    );
    assert_eq!(
        std::fs::read_to_string(fresh.path().join("etc/proton/gateway.key")).unwrap(),
        key
    );
    // --encrypt without any passphrase source is refused before anything is written.
    let o = proton(
        BIN,
        old.path(),
        &[
            "backup",
            dir.path().join("c").to_str().unwrap(),
            "--encrypt",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(!dir.path().join("c").exists());
}
