//! `proton dashboard token`: the admin login token, read through the Kubernetes API.
//!
//! The token goes to stdout and nowhere else (not to logs, not to stderr), so
//! `proton dashboard token | clip` works; what to do with it goes to stderr.

use crate::cli::DashboardCommand;
use crate::output::{bad_input, failure};
use proton_addons::{DashboardKind, dashboard_token_secret_ref, open_instructions};
use proton_core::host::Root;
use proton_core::spec::{self, Spec, SpecError};
use proton_k3s::api::{K3S_ADMIN_KUBECONFIG, client_from_file};
use std::io::Write;

pub fn run(root: &Root, cmd: DashboardCommand) -> anyhow::Result<()> {
    let DashboardCommand::Token { kubeconfig } = cmd;
    // The spec is optional here (a laptop with `--kubeconfig` has none); when present it
    // says whether there is a dashboard at all, which one, and where it is exposed.
    let spec = match Spec::load(root) {
        Ok(s) => Some(s),
        Err(SpecError::Missing { .. }) => None,
        Err(e) => return Err(bad_input(e.to_string(), None)),
    };
    if let Some(s) = &spec
        && !s.dashboard.enabled
    {
        return Err(failure(
            "the dashboard is off in the spec (dashboard.enabled = false)",
            "set dashboard.enabled = true in /etc/proton/proton.toml and run `proton apply`",
        ));
    }
    if let Some(p) = &kubeconfig
        && !p.exists()
    {
        return Err(bad_input(
            format!("--kubeconfig {}: no such file", p.display()),
            None,
        ));
    }
    let path = kubeconfig.unwrap_or_else(|| root.path(K3S_ADMIN_KUBECONFIG));
    let api = client_from_file(&path)?;
    let (namespace, name) = dashboard_token_secret_ref();
    let token = api.service_account_token(namespace, name)?;

    let mut out = std::io::stdout().lock();
    out.write_all(token.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()?;
    drop(token); // zeroized here

    let (kind, host) = match &spec {
        Some(s) => (
            match s.dashboard.kind {
                spec::DashboardKind::Headlamp => DashboardKind::Headlamp,
                spec::DashboardKind::KubernetesDashboard => DashboardKind::KubernetesDashboard,
            },
            s.dashboard.host.as_deref(),
        ),
        None => (DashboardKind::default(), None),
    };
    eprintln!("{}", open_instructions(kind, host));
    Ok(())
}
