//! `proton init`: the spec, the gateway key, the state DB and the daemon's unit.
//!
//! Nothing half-applied: everything is validated before the first write, and if a
//! write fails, every file this run created is removed again and files it replaced are
//! put back.

use crate::cli::InitArgs;
use crate::output::{bad_input, failure};
use crate::paths::{GATEWAY_KEY, GATEWAY_UNIT, packaged_unit, proton_bin};
use anyhow::Context;
use proton_core::host::{PUBLIC_MODE, Root};
use proton_core::keys::PrivateKey;
use proton_core::spec::{SPEC_PATH, Spec};
use proton_store::{DB_PATH, Store};
use std::path::PathBuf;

pub fn run(root: &Root, args: &InitArgs) -> anyhow::Result<()> {
    let spec = spec_from_args(args)?;
    let owned = [SPEC_PATH, GATEWAY_KEY, DB_PATH];
    let existing: Vec<&str> = owned.iter().copied().filter(|p| root.exists(p)).collect();
    if !existing.is_empty() && !args.force {
        return Err(failure(
            format!(
                "a gateway already exists here ({} present)",
                root.path(existing[0]).display()
            ),
            "pass --force to replace it (a new key: every peer must rejoin; the old files are kept with a .replaced-<time> suffix)",
        ));
    }

    let mut tx = FileTransaction::new(root);
    match create(root, &spec, &mut tx, &existing) {
        Ok(public) => {
            tx.commit();
            println!("Gateway `{}` created.", spec.gateway.name);
            println!("  spec:        {}", root.path(SPEC_PATH).display());
            println!("  public key:  {public}");
            println!(
                "  address:     {}",
                spec.network.cidr.with_host(spec.gateway_address())
            );
            println!("  endpoint:    {}", spec.gateway.endpoint);
            println!();
            println!("Next: review the spec, then:");
            println!(
                "  systemctl enable --now proton-gateway   start the daemon (or: proton gateway run)"
            );
            if spec.require_acme_email().is_err() {
                println!(
                    "  set tls.acme_email in the spec          (or re-run init with --acme-email)"
                );
            }
            println!("  proton apply --dry-run                  see what apply will do");
            println!("  proton apply                            firewall, K3s, add-ons");
            println!("  proton invite <name>                    to add a worker");
            Ok(())
        }
        Err(e) => {
            tx.rollback();
            Err(e)
        }
    }
}

fn spec_from_args(args: &InitArgs) -> anyhow::Result<Spec> {
    let endpoint = args
        .endpoint
        .parse()
        .map_err(|e| bad_input(format!("--endpoint `{}`: {e}", args.endpoint), None))?;
    let mut spec = Spec::new(endpoint);
    spec.gateway.name = args.name.clone();
    spec.k3s.node_name = None;
    spec.network.cidr = args
        .cidr
        .parse()
        .map_err(|e| bad_input(format!("--cidr: {e}"), None))?;
    spec.tls.acme_email = args.acme_email.clone();
    spec.validate()
        .map_err(|e| bad_input(e.to_string(), None))?;
    Ok(spec)
}

fn create(
    root: &Root,
    spec: &Spec,
    tx: &mut FileTransaction,
    existing: &[&str],
) -> anyhow::Result<proton_core::keys::PublicKey> {
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
        .context("creating the state database")?;
    drop(store);

    // The Debian package ships the unit; from a source install, write it here.
    if !root.exists(GATEWAY_UNIT) && !packaged_unit(root, "proton-gateway.service") {
        tx.created(GATEWAY_UNIT);
        root.write(
            GATEWAY_UNIT,
            gateway_unit(&proton_bin()).as_bytes(),
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
    fn set_aside(&mut self, path: &str, stamp: u64) -> anyhow::Result<()> {
        for suffix in ["", "-wal", "-shm"] {
            let from = self.root.path(format!("{path}{suffix}"));
            if !from.exists() {
                continue;
            }
            let to = PathBuf::from(format!("{}.replaced-{stamp}", from.display()));
            std::fs::rename(&from, &to)
                .with_context(|| format!("setting aside {}", from.display()))?;
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
