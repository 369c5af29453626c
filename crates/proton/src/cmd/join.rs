//! `proton join` (make this machine a peer) and `proton agent` (run its tunnel): read the
//! invitation, hand it to `proton_join`, print what it reports.

use crate::cli::{DaemonArgs, JoinArgs};
use crate::cmd::gateway::shutdown_signal;
use crate::output::{bad_input, with_hint};
use proton_core::host::Root;
use proton_core::invite::Invitation;
use proton_join::agent::{Agent, AgentOptions};
use proton_join::{JoinOptions, K3sOptions};
use std::time::Duration;

/// The invitation: the argument, else the first non-blank line of standard input. At a
/// terminal it asks for it and reads that one line (paste, Enter), never waiting for an
/// end-of-file nobody knows to type; from a pipe (`proton invite w1 --no-qr | ssh w1
/// proton join`) it reads the same one line.
fn read_invitation(arg: &Option<String>) -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal, Write};
    if let Some(text) = arg.as_deref().filter(|t| *t != "-") {
        return Ok(text.to_string());
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Paste the invitation from `proton invite` and press Enter: ");
        let _ = std::io::stderr().flush();
    }
    let mut lines = stdin.lock();
    loop {
        let mut line = String::new();
        if lines.read_line(&mut line)? == 0 {
            return Err(bad_input(
                "no invitation on standard input",
                Some(
                    "paste the line `proton invite NAME` printed, or pipe it: \
                     proton invite NAME --no-qr | ssh root@WORKER proton join"
                        .into(),
                ),
            ));
        }
        if !line.trim().is_empty() {
            return Ok(line.trim().to_string());
        }
    }
}

fn options(args: &JoinArgs) -> anyhow::Result<JoinOptions> {
    let backend = crate::cmd::gateway::backend_arg(&args.backend)?;
    Ok(JoinOptions {
        interface: args.interface.clone(),
        timeout: Duration::from_secs(args.timeout),
        backend,
        k3s: K3sOptions {
            skip: args.no_k3s,
            install_script: crate::cmd::join_k3s::script_source(&args.k3s_install_script),
            skip_download: args.k3s_skip_download,
        },
        proton_bin: crate::paths::proton_bin(),
    })
}

pub fn join(root: &Root, args: &JoinArgs) -> anyhow::Result<()> {
    let opts = options(args)?;
    let text = read_invitation(&args.invitation)?;
    let inv = Invitation::decode(&text).map_err(|e| bad_input(e.to_string(), None))?;
    proton_join::join(root, &inv, &opts, &mut |p| crate::output::say(&p.line()))
        .map(drop)
        .map_err(|e| with_hint(&e, e.hint(), e.is_bad_input()))
}

/// `proton agent`: the worker's tunnel from agent.conf, until SIGTERM.
pub fn agent(root: &Root, args: &DaemonArgs) -> anyhow::Result<()> {
    let opts = AgentOptions {
        uapi_dir: args.uapi_dir.clone(),
    };
    let fail = |e: proton_join::agent::AgentError| with_hint(&e, e.hint(), false);
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let agent = Agent::start(root, &opts).await.map_err(fail)?;
        eprintln!(
            "agent: tunnel up to {} ({})",
            agent.endpoint(),
            agent.resolved()
        );
        agent.run(shutdown_signal()).await.map_err(fail)
    })
}
