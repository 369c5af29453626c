//! `proton init`'s work: the spec, the gateway key, the state DB and (from a source
//! install) the daemon's unit, written together or not at all.
//!
//! Nothing half-applied: the caller validates the spec before anything is written, and
//! if a write fails, every file this run created is removed again and files it replaced
//! are put back.

use proton_core::host::{PUBLIC_MODE, Root};
use proton_core::keys::{PrivateKey, PublicKey};
use proton_core::paths::{GATEWAY_KEY, packaged_unit};
use proton_core::spec::{SPEC_PATH, Spec};
use proton_store::{DB_PATH, Store};
use std::path::PathBuf;

/// The gateway daemon's systemd unit, as `proton init` writes it (from-source installs).
pub use crate::uninstall::GATEWAY_UNIT;

/// The files `init` owns: present, a gateway already exists here.
pub const OWNED: [&str; 3] = [SPEC_PATH, GATEWAY_KEY, DB_PATH];

/// Why `init` wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("a gateway already exists here ({} present)", .0.display())]
    Exists(PathBuf),
    #[error("setting aside {}: {source}", .path.display())]
    SetAside {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Write(#[from] proton_core::host::HostError),
    #[error("creating the state database: {0}")]
    Store(#[source] proton_store::StoreError),
}

impl InitError {
    pub fn hint(&self) -> Option<&str> {
        match self {
            InitError::Exists(_) => Some(
                "pass --force to replace it (a new key: every peer must rejoin; the old files are kept with a .replaced-<time> suffix)",
            ),
            _ => None,
        }
    }
}

/// The gateway `init` made.
#[derive(Debug)]
pub struct Created {
    pub name: String,
    /// The spec's path under the root.
    pub spec_path: PathBuf,
    pub public_key: PublicKey,
    /// The gateway's tunnel address, with the network's prefix.
    pub address: String,
    pub endpoint: String,
    /// Ingress with TLS is on but `tls.acme_email` is not set: no Let's Encrypt issuer.
    pub needs_acme_email: bool,
}

impl std::fmt::Display for Created {
    /// What was made, then what to do next.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "Gateway `{}` created.", self.name)?;
        writeln!(f, "  spec:        {}", self.spec_path.display())?;
        writeln!(f, "  public key:  {}", self.public_key)?;
        writeln!(f, "  address:     {}", self.address)?;
        writeln!(f, "  endpoint:    {}", self.endpoint)?;
        writeln!(f)?;
        writeln!(f, "Next: review the spec, then:")?;
        writeln!(
            f,
            "  systemctl enable --now proton-gateway   start the daemon (or: proton gateway run)"
        )?;
        if self.needs_acme_email {
            writeln!(
                f,
                "  set tls.acme_email in the spec          (or re-run init with --acme-email)"
            )?;
        }
        writeln!(
            f,
            "  proton apply --dry-run                  see what apply will do"
        )?;
        writeln!(
            f,
            "  proton apply                            firewall, K3s, add-ons"
        )?;
        writeln!(
            f,
            "  proton invite <name>                    to add a worker"
        )
    }
}

/// Makes a gateway from a validated `spec`: a new key, the spec, the state DB and the
/// unit (unless the package ships it). An existing gateway is refused unless `force`,
/// which sets its files aside (`.replaced-<time>`).
pub fn init(root: &Root, spec: &Spec, proton_bin: &str, force: bool) -> Result<Created, InitError> {
    let existing: Vec<&str> = OWNED.iter().copied().filter(|p| root.exists(p)).collect();
    if let Some(first) = existing.first()
        && !force
    {
        return Err(InitError::Exists(root.path(first)));
    }
    let mut tx = FileTransaction::new(root);
    match create(root, spec, proton_bin, &mut tx, &existing) {
        Ok(public_key) => {
            tx.commit();
            Ok(Created {
                name: spec.gateway.name.clone(),
                spec_path: root.path(SPEC_PATH),
                public_key,
                address: spec
                    .network
                    .cidr
                    .with_host(spec.gateway_address())
                    .to_string(),
                endpoint: spec.gateway.endpoint.to_string(),
                needs_acme_email: spec.require_acme_email().is_err(),
            })
        }
        Err(e) => {
            tx.rollback();
            Err(e)
        }
    }
}

fn create(
    root: &Root,
    spec: &Spec,
    proton_bin: &str,
    tx: &mut FileTransaction,
    existing: &[&str],
) -> Result<PublicKey, InitError> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    for path in existing {
        tx.set_aside(path, stamp)?;
    }
    let key = PrivateKey::generate();
    let public = key.public_key();
    tx.created(GATEWAY_KEY);
    let mut text = key.expose_base64();
    text.push('\n');
    root.write_secret(GATEWAY_KEY, text.as_bytes())?;

    tx.created(SPEC_PATH);
    root.write(SPEC_PATH, spec.to_toml().as_bytes(), PUBLIC_MODE)?;

    tx.created(DB_PATH);
    let (store, _) = Store::create(root, &spec.network.cidr, &spec.gateway.name, public)
        .map_err(InitError::Store)?;
    drop(store);

    // The Debian package ships the unit; from a source install, write it here.
    if !root.exists(GATEWAY_UNIT) && !packaged_unit(root, "proton-gateway.service") {
        tx.created(GATEWAY_UNIT);
        root.write(
            GATEWAY_UNIT,
            gateway_unit(proton_bin).as_bytes(),
            PUBLIC_MODE,
        )?;
    }
    Ok(public)
}

/// The systemd unit of the gateway daemon, running `proton_bin` (the same text in the
/// Debian package, with /usr/bin/proton).
pub fn gateway_unit(proton_bin: &str) -> String {
    format!(
        "# Written by `proton init` (or shipped by the proton package). The gateway daemon:
# WireGuard data plane, join API, peer reconciliation. Restarting it never touches the
# spec or the DB.
[Unit]
Description=Proton gateway (WireGuard, join API, reconcile)
Documentation=man:proton(1)
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart={proton_bin} gateway run
Restart=on-failure
RestartSec=2
KillSignal=SIGTERM
TimeoutStopSec=20
# One descriptor per peer connection to the join API, the DB, the device: well above
# systemd's default soft limit of 1024 (the daemon also bounds its connections).
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
"
    )
}

/// Files written by one command, undone together if the command fails half-way.
struct FileTransaction<'a> {
    root: &'a Root,
    created: Vec<&'static str>,
    /// Directories that did not exist before, deepest last.
    new_dirs: Vec<PathBuf>,
    set_aside: Vec<(PathBuf, PathBuf)>,
    done: bool,
}

impl<'a> FileTransaction<'a> {
    fn new(root: &'a Root) -> Self {
        FileTransaction {
            root,
            created: Vec::new(),
            new_dirs: Vec::new(),
            set_aside: Vec::new(),
            done: false,
        }
    }

    fn created(&mut self, path: &'static str) {
        let mut missing: Vec<PathBuf> = self
            .root
            .path(path)
            .ancestors()
            .skip(1)
            .take_while(|d| !d.exists())
            .map(PathBuf::from)
            .collect();
        missing.reverse();
        for d in missing {
            if !self.new_dirs.contains(&d) {
                self.new_dirs.push(d);
            }
        }
        self.created.push(path);
    }

    /// Renames an existing file to `<file>.replaced-<stamp>` (with its SQLite sidecars).
    fn set_aside(&mut self, path: &str, stamp: u64) -> Result<(), InitError> {
        for suffix in ["", "-wal", "-shm"] {
            let from = self.root.path(format!("{path}{suffix}"));
            if !from.exists() {
                continue;
            }
            let to = PathBuf::from(format!("{}.replaced-{stamp}", from.display()));
            std::fs::rename(&from, &to).map_err(|source| InitError::SetAside {
                path: from.clone(),
                source,
            })?;
            self.set_aside.push((from, to));
        }
        Ok(())
    }

    fn commit(mut self) {
        self.done = true;
    }

    fn rollback(&mut self) {
        for path in self.created.drain(..) {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(self.root.path(format!("{path}{suffix}")));
            }
        }
        for (from, to) in self.set_aside.drain(..).rev() {
            let _ = std::fs::rename(&to, &from);
        }
        for dir in self.new_dirs.drain(..).rev() {
            let _ = std::fs::remove_dir(dir);
        }
        self.done = true;
    }
}

impl Drop for FileTransaction<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.rollback();
        }
    }
}
