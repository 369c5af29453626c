//! `proton`: the command-line interface. It parses arguments and calls into the
//! library crates; the work lives there.
#![deny(unsafe_code)]

mod cli;
mod cmd;
mod context;
mod output;
mod paths;
mod qr;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // `join` brings short-lived userspace devices up and down; gotatun logs its own
    // teardown ("channel closed") as errors, which read like a failed join. A join that
    // really fails says so itself; -v shows the data plane again.
    let quiet_data_plane = matches!(cli.command, cli::Command::Join(_));
    output::init_tracing(cli.global.verbose, quiet_data_plane);
    match cmd::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => output::report(&err),
    }
}
