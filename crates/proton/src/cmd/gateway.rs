//! `proton gateway run`, and telling a running daemon that the DB changed.

use crate::cli::DaemonArgs;
use crate::output::bad_input;
use proton_core::backend::{Backend, UnknownBackend};
use proton_core::host::Root;
use proton_proto::admin::{self, AdminError, AdminRequest, AdminResponse};

pub fn parse_backend(text: &Option<String>) -> anyhow::Result<Option<Backend>> {
    text.as_deref().map(backend_arg).transpose()
}

/// A `--backend` value, refused as a usage error naming the flag.
pub fn backend_arg(text: &str) -> anyhow::Result<Backend> {
    text.parse().map_err(|e: UnknownBackend| {
        bad_input(
            format!("--backend `{}`: use auto, kernel or userspace", e.0),
            None,
        )
    })
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

pub fn run(root: &Root, args: &DaemonArgs) -> anyhow::Result<()> {
    let opts = proton_gateway::daemon::Options {
        root: root.clone(),
        backend: parse_backend(&args.backend)?,
        uapi_dir: args.uapi_dir.clone(),
    };
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(proton_gateway::daemon::run(opts, shutdown_signal()))
        .map_err(|e| crate::output::with_hint(&e, e.hint(), false))
}

/// Asks a running daemon to apply the DB now; says what happened in one line.
pub fn notify_daemon(root: &Root) {
    match admin::request(root, &AdminRequest::Reconcile) {
        Ok(AdminResponse::Reconciled {
            added,
            updated,
            removed,
        }) => {
            eprintln!("gateway: applied live ({added} added, {updated} updated, {removed} removed)")
        }
        Ok(AdminResponse::Error { error }) => {
            eprintln!("gateway: could not apply the change: {error}")
        }
        Ok(_) => {}
        Err(AdminError::NotRunning(_)) => {
            eprintln!("gateway: the daemon is not running; the change applies when it starts")
        }
        // The DB is the source of truth and the daemon polls it: nothing is lost.
        Err(e) => eprintln!(
            "gateway: {e}\ngateway: the change is saved and will be applied when the daemon is back"
        ),
    }
}

/// Tells a running daemon the spec changed (`proton apply`); says what it applied live
/// and what needs a restart. Silent when no daemon runs: it reads the spec at start.
pub fn reload_daemon(root: &Root) {
    match admin::request(root, &AdminRequest::Reload) {
        Ok(AdminResponse::Reloaded(r)) => {
            if !r.applied.is_empty() {
                eprintln!("gateway: applied live: {}", r.applied.join(", "));
            }
            if !r.need_restart.is_empty() {
                eprintln!(
                    "gateway: {} changed: takes effect after `systemctl restart proton-gateway` (a new WireGuard device; sessions re-handshake)",
                    r.need_restart.join(", ")
                );
            }
        }
        Ok(AdminResponse::Error { error }) => {
            eprintln!("gateway: could not apply the spec live: {error}")
        }
        Ok(_) | Err(AdminError::NotRunning(_)) => {}
        Err(e) => eprintln!("gateway: {e}; it reads the spec when it starts again"),
    }
}
