//! `proton kubeconfig [--merge [FILE]]`: K3s's admin kubeconfig, usable over the tunnel
//! (`proton_ops::kubeconfig`'s).

use crate::cli::KubeconfigArgs;
use crate::output::{bad_input, with_hint};
use proton_core::host::Root;
use proton_ops::kubeconfig::{self, KubeconfigError, WARNING};
use std::path::PathBuf;

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

fn explain(e: KubeconfigError) -> anyhow::Error {
    with_hint(&e, e.hint(), e.is_bad_input())
}

pub fn run(root: &Root, args: &KubeconfigArgs) -> anyhow::Result<()> {
    let ours = kubeconfig::admin(root).map_err(explain)?;
    let Some(target) = &args.merge else {
        eprintln!("{WARNING}");
        print!("{}", ours.yaml);
        return Ok(());
    };
    let target = match target {
        Some(file) => file.clone(),
        None => default_target(root)?,
    };
    let merged = ours.merge_into(&target).map_err(explain)?;
    eprintln!("{WARNING}");
    print!("{merged}");
    Ok(())
}
