//! `proton config …`: configuration rendered from the spec and the DB.

use crate::cli::ConfigCommand;
use crate::context::{load_gateway, user_error};
use proton_core::host::Root;
use std::io::Write;

pub fn run(root: &Root, cmd: ConfigCommand) -> anyhow::Result<()> {
    match cmd {
        ConfigCommand::Wireguard => {
            let cfg = load_gateway(root)?.wg_quick_config().map_err(user_error)?;
            std::io::stdout().write_all(cfg.render().as_bytes())?;
            Ok(())
        }
    }
}
