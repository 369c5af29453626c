//! `proton backup FILE` / `proton restore FILE`: replace the VPS without touching a peer.
//!
//! The archive is a plain ustar file, `0600`, holding (paths as on the host):
//! - `proton-backup.json`: format version, the gateway's name and public key, the entries;
//! - `etc/proton/gateway.key`, `etc/proton/proton.toml`;
//! - `var/lib/proton/proton.db`: the state DB, copied with SQLite's online backup API
//!   (consistent while the daemon writes; never a file copy of a live WAL database);
//! - `var/lib/rancher/k3s/server/db/state.db`: K3s's datastore (kine on SQLite), the same
//!   way, and `var/lib/rancher/k3s/server/token`: K3s's docs (datastore/backup-restore):
//!   "you must also back up the server token file at /var/lib/rancher/k3s/server/token …
//!   the token is used to encrypt confidential data within the datastore itself"; and for
//!   SQLite "restore the contents of /var/lib/rancher/k3s/server/db (and the token)".
//!   Both only when K3s is installed here.
//!
//! Restore reads and checks the whole archive first (known names only, the key parses
//! and matches the manifest, the spec parses, each database passes `integrity_check`),
//! refuses to replace an existing gateway unless `--force`, then writes every file next
//! to its place and renames them in; a failure before the renames leaves the host as it
//! was. Stale `-wal`/`-shm` files beside a restored database are set aside, or SQLite
//! would replay another database's journal into it.

use crate::cli::{BackupArgs, RestoreArgs};
use crate::output::{bad_input, failure};
use crate::paths::GATEWAY_KEY;
use anyhow::Context;
use proton_core::host::Root;
use proton_core::keys::PrivateKey;
use proton_core::spec::{SPEC_PATH, Spec};
use proton_store::DB_PATH;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// K3s's SQLite datastore (kine), with `--datastore-endpoint` unset.
pub const K3S_DATASTORE: &str = "/var/lib/rancher/k3s/server/db/state.db";
/// K3s's server token file.
pub const K3S_TOKEN: &str = "/var/lib/rancher/k3s/server/token";
const MANIFEST: &str = "proton-backup.json";
const FORMAT: u32 = 1;
/// Where a passphrase may come from besides --passphrase-file (never argv).
pub const PASSPHRASE_ENV: &str = "PROTON_BACKUP_PASSPHRASE";
/// The first bytes of every age file.
const AGE_MAGIC: &[u8] = b"age-encryption.org/v1";

/// The passphrase from `file` (its first line) or the environment; `None` if neither.
fn passphrase(file: Option<&Path>) -> anyhow::Result<Option<age::secrecy::SecretString>> {
    let text = match file {
        Some(f) => Zeroizing::new(std::fs::read_to_string(f).map_err(|e| {
            bad_input(
                format!("cannot read the passphrase file {}: {e}", f.display()),
                None,
            )
        })?),
        None => match std::env::var(PASSPHRASE_ENV) {
            Ok(v) => Zeroizing::new(v),
            Err(_) => return Ok(None),
        },
    };
    let line = text.lines().next().unwrap_or_default();
    if line.is_empty() {
        return Err(bad_input("the passphrase is empty", None));
    }
    Ok(Some(age::secrecy::SecretString::from(line.to_owned())))
}

/// What may be in an archive, and how each is restored.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Secret,
    Spec,
    Database,
}

const ENTRIES: [(&str, Kind, bool); 5] = [
    // (host path, kind, required)
    (GATEWAY_KEY, Kind::Secret, true),
    (SPEC_PATH, Kind::Spec, true),
    (DB_PATH, Kind::Database, true),
    (K3S_DATASTORE, Kind::Database, false),
    (K3S_TOKEN, Kind::Secret, false),
];

#[derive(Serialize, Deserialize)]
struct Manifest {
    format: u32,
    gateway: String,
    public_key: String,
    created_unix: u64,
    entries: Vec<String>,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A consistent copy of a live SQLite database into `dest` (SQLite's online backup API).
fn online_copy(src: &Path, dest: &Path) -> anyhow::Result<()> {
    use rusqlite::{Connection, OpenFlags};
    let from = Connection::open_with_flags(
        src,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {}", src.display()))?;
    from.busy_timeout(proton_store::BUSY_TIMEOUT)?;
    let mut to = Connection::open(dest)?;
    {
        let b = rusqlite::backup::Backup::new(&from, &mut to)?;
        // 1024 pages a step; a step that meets a writer's lock is retried after the pause.
        b.run_to_completion(1024, std::time::Duration::from_millis(50), None)
            .with_context(|| format!("copying {}", src.display()))?;
    }
    // A self-contained file: no WAL beside it in the archive.
    to.pragma_update(None, "journal_mode", "DELETE")?;
    Ok(())
}

fn entry_name(host_path: &str) -> &str {
    host_path.trim_start_matches('/')
}

pub fn backup(root: &Root, args: &BackupArgs) -> anyhow::Result<()> {
    let spec = Spec::load(root).map_err(|e| bad_input(e.to_string(), None))?;
    let key = crate::context::read_private_key(root, GATEWAY_KEY)?;
    if !root.exists(DB_PATH) {
        return Err(failure(
            format!("{} is missing", root.path(DB_PATH).display()),
            "is this the gateway? `proton init` makes it",
        ));
    }
    if args.file.exists() {
        return Err(bad_input(
            format!("{} already exists", args.file.display()),
            Some("name a new file: a backup never overwrites one".into()),
        ));
    }
    let work = tempfile::Builder::new().prefix("proton-backup").tempdir()?;
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o700))?;
    let mut files: Vec<(&str, PathBuf)> = Vec::new();
    for (path, kind, required) in ENTRIES {
        let src = root.path(path);
        if !src.exists() {
            if required {
                return Err(failure(
                    format!("{} is missing", src.display()),
                    "is this the gateway?",
                ));
            }
            continue;
        }
        if kind == Kind::Database {
            let dest = work.path().join(entry_name(path).replace('/', "_"));
            online_copy(&src, &dest)?;
            files.push((path, dest));
        } else {
            files.push((path, src));
        }
    }
    let manifest = Manifest {
        format: FORMAT,
        gateway: spec.gateway.name.clone(),
        public_key: key.public_key().to_base64(),
        created_unix: now(),
        entries: files
            .iter()
            .map(|(p, _)| entry_name(p).to_owned())
            .collect(),
    };
    // Written beside the target, 0600 from the first byte, renamed in when complete.
    let dir = args
        .file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".proton-backup")
        .tempfile_in(dir)
        .with_context(|| format!("writing in {}", dir.display()))?;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o600))?;
    let pass = if args.encrypt || args.passphrase_file.is_some() {
        Some(passphrase(args.passphrase_file.as_deref())?.ok_or_else(|| {
            bad_input(
                "--encrypt needs a passphrase",
                Some(format!("--passphrase-file FILE, or set {PASSPHRASE_ENV}")),
            )
        })?)
    } else {
        None
    };
    let write_tar = |w: &mut dyn Write| -> anyhow::Result<()> {
        let mut tar = tar::Builder::new(w);
        let json = serde_json::to_vec_pretty(&manifest)?;
        let mut h = tar::Header::new_ustar();
        h.set_size(json.len() as u64);
        h.set_mode(0o600);
        h.set_mtime(manifest.created_unix);
        h.set_cksum();
        tar.append_data(&mut h, MANIFEST, json.as_slice())?;
        for (path, src) in &files {
            let bytes = Zeroizing::new(std::fs::read(src)?);
            let mut h = tar::Header::new_ustar();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o600);
            h.set_mtime(manifest.created_unix);
            h.set_cksum();
            tar.append_data(&mut h, entry_name(path), bytes.as_slice())?;
        }
        tar.finish()?;
        Ok(())
    };
    match &pass {
        None => write_tar(&mut tmp.as_file())?,
        Some(p) => {
            let mut enc =
                age::Encryptor::with_user_passphrase(p.clone()).wrap_output(tmp.as_file())?;
            write_tar(&mut enc)?;
            enc.finish()?;
        }
    }
    tmp.as_file().sync_all()?;
    tmp.persist_noclobber(&args.file).map_err(|e| {
        failure(
            format!("writing {}: {}", args.file.display(), e.error),
            "choose another file",
        )
    })?;
    println!(
        "Backup of gateway `{}` written to {} (0600{}).",
        manifest.gateway,
        args.file.display(),
        if pass.is_some() {
            ", encrypted with the passphrase: age format"
        } else {
            ""
        }
    );
    for e in &manifest.entries {
        println!("  /{e}");
    }
    if !files.iter().any(|(p, _)| *p == K3S_DATASTORE) {
        println!("  (no K3s datastore here: K3s is not installed)");
    }
    println!("It holds the gateway's private key and K3s's secrets: store it like the key itself.");
    println!(
        "Restore on a new machine: proton restore {}",
        args.file.display()
    );
    Ok(())
}

/// One checked archive, in memory (its secrets zeroized on drop).
struct Archive {
    manifest: Manifest,
    files: Vec<(&'static str, Kind, Zeroizing<Vec<u8>>)>,
}

fn bad_archive(file: &Path, why: impl std::fmt::Display) -> anyhow::Error {
    bad_input(
        format!("{} is not a usable Proton backup: {why}", file.display()),
        Some("nothing was changed".into()),
    )
}

fn read_archive(file: &Path, passphrase_file: Option<&Path>) -> anyhow::Result<Archive> {
    let mut f = std::io::BufReader::new(
        std::fs::File::open(file)
            .map_err(|e| bad_input(format!("cannot read {}: {e}", file.display()), None))?,
    );
    let encrypted = std::io::BufRead::fill_buf(&mut f)?.starts_with(AGE_MAGIC);
    let reader: Box<dyn Read> = if encrypted {
        let pass = passphrase(passphrase_file)?.ok_or_else(|| {
            bad_input(
                format!("{} is encrypted", file.display()),
                Some(format!(
                    "--passphrase-file FILE, or set {PASSPHRASE_ENV}; nothing was changed"
                )),
            )
        })?;
        let d = age::Decryptor::new_buffered(f).map_err(|e| bad_archive(file, e))?;
        let id = age::scrypt::Identity::new(pass);
        let r = d
            .decrypt(std::iter::once(&id as &dyn age::Identity))
            .map_err(|e| match e {
                age::DecryptError::DecryptionFailed | age::DecryptError::NoMatchingKeys => {
                    bad_input(
                        format!("{}: wrong passphrase", file.display()),
                        Some("nothing was changed".into()),
                    )
                }
                e => bad_archive(file, e),
            })?;
        Box::new(r)
    } else {
        Box::new(f)
    };
    let mut tar = tar::Archive::new(reader);
    let mut manifest = None;
    let mut files = Vec::new();
    for entry in tar.entries().map_err(|e| bad_archive(file, e))? {
        let mut entry = entry.map_err(|e| bad_archive(file, e))?;
        let name = entry
            .path()
            .map_err(|e| bad_archive(file, e))?
            .to_string_lossy()
            .into_owned();
        let mut bytes = Zeroizing::new(Vec::new());
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| bad_archive(file, e))?;
        if name == MANIFEST {
            manifest = Some(
                serde_json::from_slice::<Manifest>(&bytes)
                    .map_err(|e| bad_archive(file, format!("{MANIFEST}: {e}")))?,
            );
            continue;
        }
        let Some((path, kind, _)) = ENTRIES.iter().find(|(p, _, _)| entry_name(p) == name) else {
            return Err(bad_archive(file, format!("unexpected entry `{name}`")));
        };
        if files.iter().any(|(p, _, _)| p == path) {
            return Err(bad_archive(file, format!("`{name}` twice")));
        }
        files.push((*path, *kind, bytes));
    }
    let manifest = manifest.ok_or_else(|| bad_archive(file, format!("no {MANIFEST}")))?;
    if manifest.format != FORMAT {
        return Err(bad_archive(
            file,
            format!("format {} (this proton reads {FORMAT})", manifest.format),
        ));
    }
    for (path, _, required) in ENTRIES {
        if required && !files.iter().any(|(p, _, _)| *p == path) {
            return Err(bad_archive(
                file,
                format!("`{}` is missing", entry_name(path)),
            ));
        }
    }
    let mut listed = manifest.entries.clone();
    let mut have: Vec<String> = files
        .iter()
        .map(|(p, _, _)| entry_name(p).to_owned())
        .collect();
    listed.sort();
    have.sort();
    if listed != have {
        return Err(bad_archive(
            file,
            "its entries differ from its manifest (truncated?)",
        ));
    }
    Ok(Archive { manifest, files })
}

/// Every check that can fail, before anything is written. Returns the spec text to
/// write (with `public_ip` set when asked).
fn check(
    file: &Path,
    a: &Archive,
    public_ip: Option<std::net::IpAddr>,
) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let get = |p: &str| a.files.iter().find(|(q, _, _)| *q == p).map(|(_, _, b)| b);
    let key_text = std::str::from_utf8(get(GATEWAY_KEY).unwrap())
        .map_err(|_| bad_archive(file, "the key is not text"))?;
    let key = PrivateKey::from_base64(key_text.trim())
        .map_err(|e| bad_archive(file, format!("the key: {e}")))?;
    if key.public_key().to_base64() != a.manifest.public_key {
        return Err(bad_archive(file, "the key does not match its manifest"));
    }
    let spec_text = std::str::from_utf8(get(SPEC_PATH).unwrap())
        .map_err(|_| bad_archive(file, "the spec is not text"))?;
    let spec_text = match public_ip {
        Some(ip) => set_public_ip(spec_text, ip),
        None => spec_text.to_owned(),
    };
    let spec =
        Spec::from_toml_str(&spec_text).map_err(|e| bad_archive(file, format!("the spec: {e}")))?;
    if let Some(ip) = public_ip
        && spec.gateway.public_ip != Some(ip)
    {
        return Err(bad_archive(
            file,
            "could not set gateway.public_ip in its spec",
        ));
    }
    for (path, kind, bytes) in &a.files {
        if *kind != Kind::Database {
            continue;
        }
        let t = tempfile::NamedTempFile::new()?;
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o600))?;
        std::fs::write(t.path(), bytes.as_slice())?;
        let ok = rusqlite::Connection::open(t.path())
            .and_then(|c| c.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0)));
        if ok.as_deref() != Ok("ok") {
            return Err(bad_archive(
                file,
                format!("`{}` is not a sound SQLite database", entry_name(path)),
            ));
        }
    }
    Ok(Zeroizing::new(spec_text.into_bytes()))
}

/// The spec text with `public_ip = "IP"` in its `[gateway]` table (comments kept).
fn set_public_ip(text: &str, ip: std::net::IpAddr) -> String {
    let line = format!("public_ip = \"{ip}\"");
    let mut out = Vec::new();
    let mut table = String::new();
    let mut done = false;
    for l in text.lines() {
        let t = l.trim();
        if t.starts_with('[') {
            if table == "[gateway]" && !done {
                out.push(line.clone());
                done = true;
            }
            table = t.to_owned();
        }
        if table == "[gateway]" && (t.starts_with("public_ip ") || t.starts_with("public_ip=")) {
            if !done {
                out.push(line.clone());
                done = true;
            }
            continue;
        }
        out.push(l.to_owned());
    }
    if !done {
        if table != "[gateway]" {
            out.push("[gateway]".into());
        }
        out.push(line);
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

pub fn restore(root: &Root, args: &RestoreArgs) -> anyhow::Result<()> {
    let archive = read_archive(&args.file, args.passphrase_file.as_deref())?;
    let spec_bytes = check(&args.file, &archive, args.public_ip)?;
    let existing: Vec<&str> = [SPEC_PATH, GATEWAY_KEY, DB_PATH]
        .into_iter()
        .filter(|p| root.exists(p))
        .collect();
    if !existing.is_empty() && !args.force {
        return Err(failure(
            format!(
                "a gateway already exists here ({} present); nothing was changed",
                root.path(existing[0]).display()
            ),
            "pass --force to replace it (its files are kept with a .replaced-<time> suffix)",
        ));
    }
    // Stage: every file written in full beside its place, 0600.
    let mut staged: Vec<(PathBuf, PathBuf)> = Vec::new();
    let cleanup = |staged: &[(PathBuf, PathBuf)]| {
        for (tmp, _) in staged {
            let _ = std::fs::remove_file(tmp);
        }
    };
    for (path, kind, bytes) in &archive.files {
        let dest = root.path(path);
        let bytes: &[u8] = if *kind == Kind::Spec {
            &spec_bytes
        } else {
            bytes
        };
        let res = (|| -> anyhow::Result<PathBuf> {
            let dir = dest.parent().context("no parent directory")?;
            std::fs::create_dir_all(dir)?;
            let tmp = dir.join(format!(
                ".{}.restore",
                dest.file_name().unwrap_or_default().to_string_lossy()
            ));
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            f.write_all(bytes)?;
            f.sync_all()?;
            Ok(tmp)
        })();
        match res {
            Ok(tmp) => staged.push((tmp, dest)),
            Err(e) => {
                cleanup(&staged);
                return Err(failure(
                    format!("writing {}: {e}; nothing was changed", dest.display()),
                    "fix the cause and run `proton restore` again",
                ));
            }
        }
    }
    // Swap in: what was there is set aside (never deleted), with any SQLite sidecars.
    let stamp = now();
    for (tmp, dest) in &staged {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let old = PathBuf::from(format!("{}{suffix}", dest.display()));
            if old.exists() {
                let aside = PathBuf::from(format!("{}.replaced-{stamp}", old.display()));
                std::fs::rename(&old, &aside)
                    .with_context(|| format!("setting aside {}", old.display()))?;
            }
        }
        std::fs::rename(tmp, dest).with_context(|| format!("restoring {}", dest.display()))?;
    }
    let m = &archive.manifest;
    println!(
        "Gateway `{}` restored (public key {}).",
        m.gateway, m.public_key
    );
    for (_, dest) in &staged {
        println!("  {}", dest.display());
    }
    println!();
    println!("Next:");
    if args.public_ip.is_none() {
        println!(
            "  check gateway.public_ip in {} (this machine's address)",
            root.path(SPEC_PATH).display()
        );
    }
    println!(
        "  point the endpoint name at this machine; peers re-resolve it and reconnect unchanged"
    );
    println!(
        "  proton apply                              firewall, K3s (same token and datastore), add-ons"
    );
    println!("  systemctl enable --now proton-gateway     (or: proton gateway run)");
    Ok(())
}
