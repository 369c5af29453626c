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
    output::init_tracing(cli.global.verbose);
    match cmd::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => output::report(&err),
    }
}
