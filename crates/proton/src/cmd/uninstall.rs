//! `proton uninstall [--dry-run] [--k3s]`: what is removed, and how, is
//! `proton_ops::uninstall`'s; this prints each step.

use crate::cli::UninstallArgs;
use crate::output::{say, with_hint};
use proton_core::host::Root;
use proton_ops::uninstall::{execute, plan};

pub fn run(root: &Root, args: &UninstallArgs) -> anyhow::Result<()> {
    let r = plan(root, args.k3s);
    let commands = r.present_commands(root);
    if args.dry_run {
        print!("{}", r.dry_run_report(root, &commands));
        return Ok(());
    }
    execute(root, &r, &commands, &mut |s| say(&s.line()))
        .map_err(|e| with_hint(&e, e.hint(), false))?;
    print!("{}", r.done_report(root));
    Ok(())
}
