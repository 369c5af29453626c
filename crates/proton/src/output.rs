//! How failures reach a person: one line naming the problem, then a hint when there is
//! one. No backtraces for expected failures.

use std::process::ExitCode;

/// An error the user can act on: what went wrong, and optionally what to do.
#[derive(Debug)]
pub struct UserError {
    pub message: String,
    pub hint: Option<String>,
    /// 2 for bad input (usage, spec, invitation), 1 for everything else.
    pub code: u8,
}

impl std::fmt::Display for UserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UserError {}

/// Bad input: exit code 2.
pub fn bad_input(message: impl Into<String>, hint: Option<String>) -> anyhow::Error {
    UserError {
        message: message.into(),
        hint,
        code: 2,
    }
    .into()
}

/// A failure with a suggested fix: exit code 1.
pub fn failure(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    UserError {
        message: message.into(),
        hint: Some(hint.into()),
        code: 1,
    }
    .into()
}

/// An error and its causes on one line, outermost first. A library error that already
/// says its cause in its own message (`{0}` with a `#[source]`) is not followed by that
/// cause a second time.
fn one_line<'a>(chain: impl Iterator<Item = &'a (dyn std::error::Error + 'static)>) -> String {
    let mut line = String::new();
    for cause in chain {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// A library error with the hint its crate offers (`hint()`), as the user sees it:
/// its causes on one line, the hint on its own, exit code 2 for bad input, else 1.
pub fn with_hint(
    e: &(dyn std::error::Error + 'static),
    hint: Option<impl Into<String>>,
    bad_input: bool,
) -> anyhow::Error {
    UserError {
        message: one_line(std::iter::successors(Some(e), |e| e.source())),
        hint: hint.map(Into::into),
        code: if bad_input { 2 } else { 1 },
    }
    .into()
}

/// Reports a failed command: `error:` (and `hint:`) on stderr; with `--json` also the
/// same as one JSON object on stdout, `{"error":{"message","hint","exit_code"}}`, so a
/// script reading stdout always gets JSON. The exit code is the text form's.
pub fn report(err: &anyhow::Error, json: bool) -> ExitCode {
    let line = one_line(err.chain());
    let user = err.chain().find_map(|e| e.downcast_ref::<UserError>());
    let hint = user.and_then(|u| u.hint.as_deref());
    let code = user.map(|u| u.code).unwrap_or(1);
    if json {
        print_json_error(&line, hint, code);
    }
    eprintln!("error: {line}");
    if let Some(hint) = hint {
        eprintln!("hint: {hint}");
    }
    ExitCode::from(code)
}

fn print_json_error(message: &str, hint: Option<&str>, code: u8) {
    let value = serde_json::json!({
        "error": { "message": message, "hint": hint, "exit_code": code }
    });
    println!("{value}");
}

/// Whether the command being run was given `--json` (any subcommand that has one).
pub fn wants_json(matches: &clap::ArgMatches) -> bool {
    let mut m = matches;
    while let Some((_, sub)) = m.subcommand() {
        m = sub;
    }
    matches!(m.try_get_one::<bool>("json"), Ok(Some(true)))
}

/// A command line clap rejects: clap's own message and exit code (2; 0 for --help and
/// --version), plus a JSON error on stdout when `--json` was among the arguments.
pub fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let informational = matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
    if !informational && std::env::args().any(|a| a == "--json") {
        let text = e.to_string();
        let first = text
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ");
        print_json_error(first, Some("see --help"), 2);
    }
    let _ = e.print();
    ExitCode::from(if informational { 0 } else { 2 })
}

/// Rust ignores SIGPIPE, so `println!` to a closed pipe (`proton peer list | head -1`)
/// panics with "Broken pipe" and exit code 101. Restore the default: the process ends
/// quietly on SIGPIPE, like `ls` or `cat` would.
#[allow(unsafe_code)]
pub fn die_quietly_on_broken_pipe() {
    // SAFETY: signal(2) with SIG_DFL touches no memory of ours; it runs at the start of
    // main, before this process has started any thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

pub fn init_tracing(verbose: u8, quiet_data_plane: bool) {
    let default = match verbose {
        0 if quiet_data_plane => "warn,proton=info,proton_wg=warn,gotatun=off",
        0 => "warn,proton=info",
        1 => "info",
        2 => "debug",
        // HTTP/TLS crates log the wire unredacted at TRACE (request headers, bodies such
        // as a Secret read by `dashboard token`): never above DEBUG unless PROTON_LOG asks.
        _ => "trace,ureq=debug,ureq_proto=debug,rustls=debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PROTON_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        // Colour only for a person at a terminal, not in logs and captured output.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Writes a library's [`Line`](proton_core::say::Line) to the stream it names.
pub fn say(line: &proton_core::say::Line) {
    use proton_core::say::Line;
    match line {
        Line::Out(text) => println!("{text}"),
        Line::Err(text) => eprintln!("{text}"),
    }
}
