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

use crate::gateway_key::{KeyFileError, read_private_key};
use proton_core::host::Root;
use proton_core::keys::PrivateKey;
use proton_core::paths::GATEWAY_KEY;
use proton_core::spec::{SPEC_PATH, Spec, SpecError};
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

/// Why a backup or a restore did not happen.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Spec(#[source] SpecError),
    #[error(transparent)]
    Key(#[from] KeyFileError),
    #[error("{} is missing", path.display())]
    DbMissing { path: PathBuf },
    #[error("{} is missing", path.display())]
    EntryMissing { path: PathBuf },
    #[error("{} already exists", path.display())]
    FileExists { path: PathBuf },
    #[error("cannot read the passphrase file {}: {source}", path.display())]
    PassphraseFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the passphrase is empty")]
    PassphraseEmpty,
    #[error("--encrypt needs a passphrase")]
    NeedPassphrase,
    #[error("writing in {}", dir.display())]
    WriteIn {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {}: {source}", path.display())]
    Persist {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("opening {}", path.display())]
    OpenDb {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("copying {}", path.display())]
    CopyDb {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is encrypted", path.display())]
    Encrypted { path: PathBuf },
    #[error("{}: wrong passphrase", path.display())]
    WrongPassphrase { path: PathBuf },
    #[error("{} is not a usable Proton backup: {why}", path.display())]
    BadArchive { path: PathBuf, why: String },
    #[error("a gateway already exists here ({} present); nothing was changed", path.display())]
    GatewayExists { path: PathBuf },
    #[error("writing {}: {source}; nothing was changed", path.display())]
    Stage {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("setting aside {}", path.display())]
    SetAside {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("restoring {}", path.display())]
    Restoring {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Encrypt(#[from] age::EncryptError),
}

impl BackupError {
    /// What to do about it, where there is something to do.
    pub fn hint(&self) -> Option<&str> {
        use BackupError as E;
        Some(match self {
            E::Key(k) => return k.hint(),
            E::DbMissing { .. } => "is this the gateway? `proton init` makes it",
            E::EntryMissing { .. } => "is this the gateway?",
            E::FileExists { .. } => "name a new file: a backup never overwrites one",
            E::NeedPassphrase => "--passphrase-file FILE, or set PROTON_BACKUP_PASSPHRASE",
            E::Persist { .. } => "choose another file",
            E::Encrypted { .. } => {
                "--passphrase-file FILE, or set PROTON_BACKUP_PASSPHRASE; nothing was changed"
            }
            E::WrongPassphrase { .. } | E::BadArchive { .. } => "nothing was changed",
            E::GatewayExists { .. } => {
                "pass --force to replace it (its files are kept with a .replaced-<time> suffix)"
            }
            E::Stage { .. } => "fix the cause and run `proton restore` again",
            _ => return None,
        })
    }

    /// The input was at fault (the spec, the archive, the passphrase, the target file),
    /// not the host: exit code 2 rather than 1.
    pub fn is_bad_input(&self) -> bool {
        use BackupError as E;
        matches!(
            self,
            E::Spec(_)
                | E::FileExists { .. }
                | E::PassphraseFile { .. }
                | E::PassphraseEmpty
                | E::NeedPassphrase
                | E::Unreadable { .. }
                | E::Encrypted { .. }
                | E::WrongPassphrase { .. }
                | E::BadArchive { .. }
        )
    }
}

/// The passphrase from `file` (its first line) or the environment; `None` if neither.
fn passphrase(file: Option<&Path>) -> Result<Option<age::secrecy::SecretString>, BackupError> {
    let text = match file {
        Some(f) => Zeroizing::new(std::fs::read_to_string(f).map_err(|source| {
            BackupError::PassphraseFile {
                path: f.to_owned(),
                source,
            }
        })?),
        None => match std::env::var(PASSPHRASE_ENV) {
            Ok(v) => Zeroizing::new(v),
            Err(_) => return Ok(None),
        },
    };
    let line = text.lines().next().unwrap_or_default();
    if line.is_empty() {
        return Err(BackupError::PassphraseEmpty);
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
fn online_copy(src: &Path, dest: &Path) -> Result<(), BackupError> {
    use rusqlite::{Connection, OpenFlags};
    let from = Connection::open_with_flags(
        src,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| BackupError::OpenDb {
        path: src.to_owned(),
        source,
    })?;
    from.busy_timeout(proton_store::BUSY_TIMEOUT)?;
    let mut to = Connection::open(dest)?;
    {
        let b = rusqlite::backup::Backup::new(&from, &mut to)?;
        // 1024 pages a step; a step that meets a writer's lock is retried after the pause.
        b.run_to_completion(1024, std::time::Duration::from_millis(50), None)
            .map_err(|source| BackupError::CopyDb {
                path: src.to_owned(),
                source,
            })?;
    }
    // A self-contained file: no WAL beside it in the archive.
    to.pragma_update(None, "journal_mode", "DELETE")?;
    Ok(())
}

fn entry_name(host_path: &str) -> &str {
    host_path.trim_start_matches('/')
}

/// What `backup` wrote.
#[derive(Debug)]
pub struct Written {
    /// The gateway's name, from its spec.
    pub gateway: String,
    /// Whether the archive is encrypted (age, scrypt passphrase).
    pub encrypted: bool,
    /// The host paths in the archive, without their leading `/`.
    pub entries: Vec<String>,
    /// Whether K3s's datastore was among them (K3s is installed here).
    pub k3s: bool,
    /// The archive.
    pub file: PathBuf,
}

impl Written {
    /// What `proton backup` prints: what is in the archive and how to restore it.
    pub fn render(&self) -> String {
        let file = self.file.display();
        let mut out = format!(
            "Backup of gateway `{}` written to {file} (0600{}).\n",
            self.gateway,
            if self.encrypted {
                ", encrypted with the passphrase: age format"
            } else {
                ""
            }
        );
        for e in &self.entries {
            out.push_str(&format!("  /{e}\n"));
        }
        if !self.k3s {
            out.push_str("  (no K3s datastore here: K3s is not installed)\n");
        }
        out.push_str(
            "It holds the gateway's private key and K3s's secrets: store it like the key itself.\n",
        );
        out.push_str(&format!(
            "Restore on a new machine: proton restore {file}\n"
        ));
        out
    }
}

/// Writes the archive to `file` (a new file, `0600`); encrypted with the passphrase from
/// `passphrase_file` or [`PASSPHRASE_ENV`] when `encrypt` or a passphrase file is given.
pub fn backup(
    root: &Root,
    file: &Path,
    encrypt: bool,
    passphrase_file: Option<&Path>,
) -> Result<Written, BackupError> {
    let spec = Spec::load(root).map_err(BackupError::Spec)?;
    let key = read_private_key(root, GATEWAY_KEY)?;
    if !root.exists(DB_PATH) {
        return Err(BackupError::DbMissing {
            path: root.path(DB_PATH),
        });
    }
    if file.exists() {
        return Err(BackupError::FileExists {
            path: file.to_owned(),
        });
    }
    let work = tempfile::Builder::new().prefix("proton-backup").tempdir()?;
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o700))?;
    let mut files: Vec<(&str, PathBuf)> = Vec::new();
    for (path, kind, required) in ENTRIES {
        let src = root.path(path);
        if !src.exists() {
            if required {
                return Err(BackupError::EntryMissing { path: src });
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
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".proton-backup")
        .tempfile_in(dir)
        .map_err(|source| BackupError::WriteIn {
            dir: dir.to_owned(),
            source,
        })?;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o600))?;
    let pass = if encrypt || passphrase_file.is_some() {
        Some(passphrase(passphrase_file)?.ok_or(BackupError::NeedPassphrase)?)
    } else {
        None
    };
    let write_tar = |w: &mut dyn Write| -> Result<(), BackupError> {
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
    tmp.persist_noclobber(file)
        .map_err(|e| BackupError::Persist {
            path: file.to_owned(),
            source: e.error,
        })?;
    Ok(Written {
        gateway: manifest.gateway,
        encrypted: pass.is_some(),
        entries: manifest.entries,
        k3s: files.iter().any(|(p, _)| *p == K3S_DATASTORE),
        file: file.to_owned(),
    })
}

/// One checked archive, in memory (its secrets zeroized on drop).
struct Archive {
    manifest: Manifest,
    files: Vec<(&'static str, Kind, Zeroizing<Vec<u8>>)>,
}

fn bad_archive(file: &Path, why: impl std::fmt::Display) -> BackupError {
    BackupError::BadArchive {
        path: file.to_owned(),
        why: why.to_string(),
    }
}

fn read_archive(file: &Path, passphrase_file: Option<&Path>) -> Result<Archive, BackupError> {
    let mut f = std::io::BufReader::new(std::fs::File::open(file).map_err(|source| {
        BackupError::Unreadable {
            path: file.to_owned(),
            source,
        }
    })?);
    let encrypted = std::io::BufRead::fill_buf(&mut f)?.starts_with(AGE_MAGIC);
    let reader: Box<dyn Read> = if encrypted {
        let pass = passphrase(passphrase_file)?.ok_or_else(|| BackupError::Encrypted {
            path: file.to_owned(),
        })?;
        let d = age::Decryptor::new_buffered(f).map_err(|e| bad_archive(file, e))?;
        let id = age::scrypt::Identity::new(pass);
        let r = d
            .decrypt(std::iter::once(&id as &dyn age::Identity))
            .map_err(|e| match e {
                age::DecryptError::DecryptionFailed | age::DecryptError::NoMatchingKeys => {
                    BackupError::WrongPassphrase {
                        path: file.to_owned(),
                    }
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
/// write (with `public_ip` set when asked, and an endpoint that was an IP address moved
/// to it) and the address the endpoint was moved from.
fn check(
    file: &Path,
    a: &Archive,
    public_ip: Option<std::net::IpAddr>,
) -> Result<(Zeroizing<Vec<u8>>, Option<std::net::IpAddr>), BackupError> {
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
    let mut moved = None;
    let spec_text = match public_ip {
        Some(ip) => {
            let mut text = set_public_ip(spec_text, ip);
            // An endpoint written as the old address is wrong on this machine: new
            // invitations and client configs must carry the new one. (A name is left
            // alone: it is moved in DNS, and peers re-resolve it.)
            let old = Spec::from_toml_str(&text)
                .map_err(|e| bad_archive(file, format!("the spec: {e}")))?
                .gateway
                .endpoint;
            if let Some(was) = old.ip().filter(|was| *was != ip) {
                let new = proton_core::spec::Endpoint {
                    host: proton_core::spec::EndpointHost::Ip(ip),
                    port: old.port,
                };
                text = set_gateway_key(&text, "endpoint", &new.to_string());
                moved = Some(was);
            }
            text
        }
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
    Ok((Zeroizing::new(spec_text.into_bytes()), moved))
}

/// The spec text with `public_ip = "IP"` in its `[gateway]` table (comments kept).
fn set_public_ip(text: &str, ip: std::net::IpAddr) -> String {
    set_gateway_key(text, "public_ip", &ip.to_string())
}

/// The spec text with `key = "value"` in its `[gateway]` table, replacing the line
/// that sets it or added to the table (comments and everything else kept).
fn set_gateway_key(text: &str, key: &str, value: &str) -> String {
    let line = format!("{key} = \"{value}\"");
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
        if table == "[gateway]"
            && (t.starts_with(&format!("{key} ")) || t.starts_with(&format!("{key}=")))
        {
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

/// What `restore` put in place.
#[derive(Debug)]
pub struct Restored {
    /// The gateway's name and public key, from the archive's manifest.
    pub gateway: String,
    pub public_key: String,
    /// Each file written, as a path under the root.
    pub files: Vec<PathBuf>,
    /// The spec's endpoint was this IP address and now is `--public-ip`.
    pub endpoint_moved_from: Option<std::net::IpAddr>,
    /// `--public-ip`: the restored spec's `gateway.public_ip`.
    pub public_ip: Option<std::net::IpAddr>,
}

impl Restored {
    /// What `proton restore` prints: the files put back, then what to do next on this
    /// machine (the spec's address, the endpoint, apply, the daemon).
    pub fn render(&self, root: &Root) -> String {
        let mut out = format!(
            "Gateway `{}` restored (public key {}).\n",
            self.gateway, self.public_key
        );
        for dest in &self.files {
            out.push_str(&format!("  {}\n", dest.display()));
        }
        out.push_str("\nNext:\n");
        if self.public_ip.is_none() {
            out.push_str(&format!(
                "  check gateway.public_ip in {} (this machine's address)\n",
                root.path(SPEC_PATH).display()
            ));
        }
        match (self.endpoint_moved_from, self.public_ip) {
            (Some(was), Some(now)) => out.push_str(&format!(
                "  gateway.endpoint was the address {was}; it is now {now}, so new invitations and client configs carry it.\n  \
                 peers configured with {was} come back only where the gateway can reach their last endpoint (not behind a NAT): a DNS name as the endpoint survives a move\n"
            )),
            _ => out.push_str(
                "  point the endpoint name at this machine; peers re-resolve it and reconnect unchanged\n",
            ),
        }
        out.push_str(
            "  proton apply                              firewall, K3s (same token and datastore), add-ons\n",
        );
        out.push_str("  systemctl enable --now proton-gateway     (or: proton gateway run)\n");
        out
    }
}

/// Checks the whole archive `file`, then puts its files in place (see the module's
/// documentation); with `public_ip`, the restored spec's `gateway.public_ip` is set.
pub fn restore(
    root: &Root,
    file: &Path,
    passphrase_file: Option<&Path>,
    force: bool,
    public_ip: Option<std::net::IpAddr>,
) -> Result<Restored, BackupError> {
    let archive = read_archive(file, passphrase_file)?;
    let (spec_bytes, endpoint_moved_from) = check(file, &archive, public_ip)?;
    let existing: Vec<&str> = [SPEC_PATH, GATEWAY_KEY, DB_PATH]
        .into_iter()
        .filter(|p| root.exists(p))
        .collect();
    if !existing.is_empty() && !force {
        return Err(BackupError::GatewayExists {
            path: root.path(existing[0]),
        });
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
        let res = (|| -> std::io::Result<PathBuf> {
            let dir = dest
                .parent()
                .ok_or_else(|| std::io::Error::other("no parent directory"))?;
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
            Err(source) => {
                cleanup(&staged);
                return Err(BackupError::Stage { path: dest, source });
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
                    .map_err(|source| BackupError::SetAside { path: old, source })?;
            }
        }
        std::fs::rename(tmp, dest).map_err(|source| BackupError::Restoring {
            path: dest.clone(),
            source,
        })?;
    }
    Ok(Restored {
        gateway: archive.manifest.gateway.clone(),
        public_key: archive.manifest.public_key.clone(),
        files: staged.into_iter().map(|(_, dest)| dest).collect(),
        endpoint_moved_from,
        public_ip,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_ip_replaces_the_line_or_is_added_to_the_gateway_table() {
        let text = "# mine\n[gateway]\nname = \"gw\"\npublic_ip = \"1.2.3.4\"\n[network]\ncidr = \"10.7.7.0/24\"\n";
        let out = set_public_ip(text, "5.6.7.8".parse().unwrap());
        assert_eq!(
            out,
            "# mine\n[gateway]\nname = \"gw\"\npublic_ip = \"5.6.7.8\"\n[network]\ncidr = \"10.7.7.0/24\"\n"
        );
        let out = set_public_ip(
            "[gateway]\nname = \"gw\"\n[network]\n",
            "5.6.7.8".parse().unwrap(),
        );
        assert_eq!(
            out,
            "[gateway]\nname = \"gw\"\npublic_ip = \"5.6.7.8\"\n[network]\n"
        );
    }

    #[test]
    fn the_passphrase_hints_name_the_variable() {
        assert!(
            BackupError::NeedPassphrase
                .hint()
                .unwrap()
                .contains(PASSPHRASE_ENV)
        );
        let e = BackupError::Encrypted { path: "x".into() };
        assert!(e.hint().unwrap().contains(PASSPHRASE_ENV));
        assert!(e.is_bad_input());
    }
}
