//! `proton gateway run`, and telling a running daemon that the DB changed.

use crate::cli::DaemonArgs;
use crate::output::bad_input;
use proton_core::backend::{Backend, UnknownBackend};
use proton_core::host::Root;
use proton_proto::admin;

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
    if let Some(line) = admin::reconcile_now(root) {
        eprintln!("{line}");
    }
}

/// Tells a running daemon the spec changed (`proton apply`); says what it applied live
/// and what needs a restart. Silent when no daemon runs: it reads the spec at start.
pub fn reload_daemon(root: &Root) {
    for line in admin::reload_now(root) {
        eprintln!("{line}");
    }
}
