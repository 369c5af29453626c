//! `proton client add|disable|enable|allow|deny` (`proton_ops::client`).

use crate::cli::ClientCommand;
use crate::cmd::gateway::notify_daemon;
use crate::output::with_hint;
use proton_core::host::Root;
use proton_ops::client::{self, AddRequest, ClientError};

pub fn run(root: &Root, cmd: ClientCommand) -> anyhow::Result<()> {
    match cmd {
        ClientCommand::Add {
            name,
            full_tunnel,
            admin,
            allow,
            qr_png,
            no_qr,
            expires,
        } => {
            let req = AddRequest {
                name,
                full_tunnel,
                admin,
                allow,
                qr_png,
                no_qr,
                expires,
            };
            // The config (with its private key) goes to stdout; the rest to stderr.
            let added = client::add(root, req, &mut std::io::stdout()).map_err(fail)?;
            eprint!("{added}");
            notify_daemon(root);
        }
        ClientCommand::Disable { name } => switch(root, &name, true)?,
        ClientCommand::Enable { name } => switch(root, &name, false)?,
        ClientCommand::Allow { name, grants } => change(root, &name, &grants, false)?,
        ClientCommand::Deny { name, grants } => change(root, &name, &grants, true)?,
    }
    Ok(())
}

fn fail(e: ClientError) -> anyhow::Error {
    with_hint(&e, e.hint(), e.is_bad_input())
}

/// `client allow|deny`: the daemon applies the change live.
fn change(root: &Root, name: &str, grants: &[String], deny: bool) -> anyhow::Result<()> {
    let done = client::change_allows(root, name, grants, deny).map_err(fail)?;
    println!("{done}");
    if done.changed {
        notify_daemon(root);
    }
    Ok(())
}

fn switch(root: &Root, name: &str, disable: bool) -> anyhow::Result<()> {
    let done = client::set_disabled(root, name, disable).map_err(fail)?;
    if done.changed {
        notify_daemon(root);
    }
    println!("{done}");
    Ok(())
}
