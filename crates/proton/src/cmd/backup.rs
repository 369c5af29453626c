//! `proton backup FILE` / `proton restore FILE`: the archive is `proton_ops::backup`'s,
//! and so is what it says it wrote and what to do next; this prints that.

use crate::cli::{BackupArgs, RestoreArgs};
use crate::output::with_hint;
use proton_core::host::Root;
use proton_ops::backup::BackupError;

/// Its message, its hint and exit code; a step that failed (`opening …`, `copying …`)
/// with its chain of causes.
fn explain(e: BackupError) -> anyhow::Error {
    with_hint(&e, e.hint(), e.is_bad_input())
}

pub fn backup(root: &Root, args: &BackupArgs) -> anyhow::Result<()> {
    let w = proton_ops::backup::backup(
        root,
        &args.file,
        args.encrypt,
        args.passphrase_file.as_deref(),
    )
    .map_err(explain)?;
    print!("{}", w.render());
    Ok(())
}

pub fn restore(root: &Root, args: &RestoreArgs) -> anyhow::Result<()> {
    let r = proton_ops::backup::restore(
        root,
        &args.file,
        args.passphrase_file.as_deref(),
        args.force,
        args.public_ip,
    )
    .map_err(explain)?;
    print!("{}", r.render(root));
    Ok(())
}
