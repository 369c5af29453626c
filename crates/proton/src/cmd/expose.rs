//! `proton expose NAME`: one auto-deploy file per exposed app, and its removal by
//! emptying the file (`proton_ops::expose`'s); the file of a dry run goes to stdout,
//! what was done to stderr.

use crate::cli::ExposeArgs;
use crate::output::{bad_input, with_hint};
use proton_core::host::Root;
use proton_ops::expose::{ExposeError, Exposed, Exposure, Removed};

fn explain(e: ExposeError) -> anyhow::Error {
    with_hint(&e, e.hint(), e.is_bad_input())
}

pub fn run(root: &Root, args: &ExposeArgs) -> anyhow::Result<()> {
    // Every input is checked before anything is read or written.
    let exposure = Exposure::new(&args.name).map_err(explain)?;
    if args.remove {
        match exposure.remove(root, args.dry_run).map_err(explain)? {
            r @ Removed::DryRun(_) => print!("{r}"),
            r => eprint!("{r}"),
        }
        return Ok(());
    }
    let (Some(host), Some(service)) = (&args.host, &args.service) else {
        return Err(bad_input("--host and --service are required", None));
    };
    match exposure
        .expose(root, host, service, args.vpn_only, args.dry_run)
        .map_err(explain)?
    {
        e @ Exposed::DryRun(_) => print!("{e}"),
        e => eprint!("{e}"),
    }
    Ok(())
}
