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

pub fn report(err: &anyhow::Error) -> ExitCode {
    // The outermost context first, then the causes, on one line.
    let mut line = String::new();
    for (i, cause) in err.chain().enumerate() {
        if i > 0 {
            line.push_str(": ");
        }
        line.push_str(&cause.to_string());
    }
    eprintln!("error: {line}");
    let user = err.chain().find_map(|e| e.downcast_ref::<UserError>());
    if let Some(hint) = user.and_then(|u| u.hint.as_deref()) {
        eprintln!("hint: {hint}");
    }
    ExitCode::from(user.map(|u| u.code).unwrap_or(1))
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
