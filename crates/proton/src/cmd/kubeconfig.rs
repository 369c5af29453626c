//! `proton kubeconfig [--merge [FILE]]`: K3s's admin kubeconfig, usable over the tunnel.

use crate::cli::KubeconfigArgs;
use crate::output::{bad_input, failure};
use proton_core::host::{Root, SECRET_MODE, write_atomic};
use proton_core::spec::Spec;
use proton_k3s::config::ADMIN_KUBECONFIG_PATH;
use proton_k3s::gateway::server_url;
use proton_k3s::kubeconfig;
use std::path::PathBuf;

const WARNING: &str = "warning: this kubeconfig is the cluster-admin credential (full control of the cluster): keep it 0600, never commit or share it";

/// `--merge` without a FILE: `~/.kube/config`, under the root like every host path.
fn default_target(root: &Root) -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME").ok_or_else(|| {
        bad_input(
            "HOME is not set: give the file to merge into, e.g. --merge ~/.kube/config",
            None,
        )
    })?;
    Ok(root.path(PathBuf::from(home).join(".kube/config")))
}

pub fn run(root: &Root, args: &KubeconfigArgs) -> anyhow::Result<()> {
    let spec = Spec::load(root).map_err(|e| bad_input(e.to_string(), None))?;
    let admin = root.read_optional(ADMIN_KUBECONFIG_PATH)?.ok_or_else(|| {
        failure(
            format!(
                "{} is missing: K3s is not installed on this gateway",
                root.path(ADMIN_KUBECONFIG_PATH).display()
            ),
            "run `proton apply` first (it installs the K3s server)",
        )
    })?;
    let name = &spec.gateway.name;
    let ours = kubeconfig::rewrite(&admin, &server_url(&spec), name)?;
    let Some(target) = &args.merge else {
        eprintln!("{WARNING}");
        print!("{ours}");
        return Ok(());
    };
    let target = match target {
        Some(file) => file.clone(),
        None => default_target(root)?,
    };
    let existing = match std::fs::read_to_string(&target) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(anyhow::anyhow!("reading {}: {e}", target.display())),
    };
    let merged = kubeconfig::merge(&existing, &ours)?;
    write_atomic(&target, merged.as_bytes(), SECRET_MODE)?;
    eprintln!("{WARNING}");
    println!(
        "Merged cluster, context and user `{name}` into {} (mode 0600; other contexts untouched).",
        target.display()
    );
    println!("Use it from any machine on the VPN: kubectl --context {name} get nodes");
    Ok(())
}
