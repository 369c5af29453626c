//! `proton`: the command-line interface. It parses arguments and calls into the
//! library crates; the work lives there.
#![deny(unsafe_code)]

mod cli;
mod cmd;
mod context;
mod output;
mod paths;

use clap::{CommandFactory, FromArgMatches};
use std::process::ExitCode;

fn main() -> ExitCode {
    let matches = match cli::Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => return output::usage_error(e),
    };
    let json = output::wants_json(&matches);
    let cli = match cli::Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => return output::usage_error(e),
    };
    if prints_for_a_pipe(&cli.command) {
        output::die_quietly_on_broken_pipe();
    }
    // `join` brings short-lived userspace devices up and down; gotatun logs its own
    // teardown ("channel closed") as errors, which read like a failed join. A join that
    // really fails says so itself; -v shows the data plane again.
    let quiet_data_plane = matches!(cli.command, cli::Command::Join(_));
    output::init_tracing(cli.global.verbose, quiet_data_plane);
    match cmd::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => output::report(&err, json),
    }
}

/// Commands whose output is read by people and scripts (`| head`, `| grep -q`): when
/// the reader goes away they stop like any Unix filter instead of panicking. Not the
/// daemons, nor commands that drive other processes (`apply`, `join`, `lab up`,
/// `lab exec`): there a closed pipe is an error to handle, not the end of the job. Nor
/// `client add`: its peer is committed only once the config (with its private key) is
/// out, so a closed pipe must reach it as an error that rolls the peer back.
fn prints_for_a_pipe(cmd: &cli::Command) -> bool {
    use cli::{Command as C, LabCommand};
    matches!(
        cmd,
        C::Status(_)
            | C::Doctor(_)
            | C::Peer(_)
            | C::Config(_)
            | C::Completions { .. }
            | C::Invite(_)
            | C::Kubeconfig(_)
            | C::Dashboard(_)
            | C::Expose(_)
            | C::Init(_)
            | C::Lab(LabCommand::Status { .. } | LabCommand::Down { .. })
    )
}
