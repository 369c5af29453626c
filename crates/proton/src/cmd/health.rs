//! `proton status`, `proton doctor`, `proton reresolve`: thin wrappers over `proton-ops`.

use crate::cli::{DoctorArgs, ReresolveArgs, StatusArgs};
use crate::output::{failure, with_hint};
use proton_core::host::Root;
use proton_ops::OpsError;
use std::time::Duration;

/// A daemon that is not running, or a machine not set up, gets a hint.
fn explain(e: OpsError) -> anyhow::Error {
    with_hint(&e, e.hint(), false)
}

pub fn status(root: &Root, args: &StatusArgs) -> anyhow::Result<()> {
    let st = proton_ops::status::gather(
        root,
        &args.interface,
        args.stale_after.map(Duration::from_secs),
    )
    .map_err(explain)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&st)?);
    } else {
        print!("{}", proton_ops::status::render(&st));
    }
    Ok(())
}

pub fn doctor(root: &Root, args: &DoctorArgs) -> anyhow::Result<()> {
    let report = proton_ops::doctor::run(
        root,
        &args.interface,
        args.stale_after.map(Duration::from_secs),
    )
    .map_err(explain)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    let code = report.exit_code();
    if code != 0 {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        std::process::exit(i32::from(code));
    }
    Ok(())
}

pub fn reresolve(root: &Root, args: &ReresolveArgs) -> anyhow::Result<()> {
    let tunnel = proton_ops::worker::load(root, &args.interface)
        .map_err(explain)?
        .ok_or_else(|| {
            failure(
                format!(
                    "no tunnel configuration for {} on this machine",
                    args.interface
                ),
                "run `proton join` first",
            )
        })?;
    let outcome = proton_ops::reresolve::reresolve(&tunnel).map_err(explain)?;
    println!("{}", outcome.line(&tunnel));
    Ok(())
}
