//! `proton config …`: configuration rendered from the spec and the DB.

use crate::cli::ConfigCommand;
use crate::cmd::gateway_context;
use proton_core::host::Root;
use std::io::Write;

pub fn run(root: &Root, cmd: ConfigCommand) -> anyhow::Result<()> {
    match cmd {
        ConfigCommand::Wireguard => {
            let ctx = gateway_context(root)?;
            let cfg = ctx.wg_quick_config()?;
            std::io::stdout().write_all(cfg.render().as_bytes())?;
            Ok(())
        }
    }
}
