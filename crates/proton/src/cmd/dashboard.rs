//! `proton dashboard token`: the admin login token (`proton_ops::dashboard`'s).
//!
//! The token goes to stdout and nowhere else (not to logs, not to stderr), so
//! `proton dashboard token | clip` works; what to do with it goes to stderr.

use crate::cli::DashboardCommand;
use crate::output::with_hint;
use proton_core::host::Root;
use std::io::Write;

pub fn run(root: &Root, cmd: DashboardCommand) -> anyhow::Result<()> {
    let DashboardCommand::Token { kubeconfig } = cmd;
    let t = proton_ops::dashboard::token(root, kubeconfig)
        .map_err(|e| with_hint(&e, e.hint(), e.is_bad_input()))?;
    let mut out = std::io::stdout().lock();
    out.write_all(t.token.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()?;
    drop(t.token); // zeroized here
    eprintln!("{}", t.instructions);
    Ok(())
}
