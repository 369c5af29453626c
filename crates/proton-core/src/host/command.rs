//! Running host commands through one trait, so tests record instead of executing.
//!
//! [`SystemRunner`] runs, [`NotRun`] prints, [`Bounded`] puts a time limit on another
//! runner, [`RecordingRunner`] records for tests. [`super::Host`] picks, once per
//! process, which of them host-wide commands go through.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// What a finished command produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }
}

/// One command invocation. `env` values may be secrets: [`Invocation`]'s `Debug`
/// redacts them, and no implementation logs them.
#[derive(Clone, PartialEq, Eq)]
pub struct Invocation {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub stdin: Option<String>,
}

impl std::fmt::Debug for Invocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let env: Vec<_> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Invocation")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("env_keys", &env)
            .field("stdin", &self.stdin.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Invocation {
    /// The command line as a person would type it (no env, no stdin).
    pub fn display(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Runs a program. `Err` only when it could not be started at all.
pub trait Runner {
    fn run(
        &self,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
        stdin: Option<&str>,
    ) -> std::io::Result<Output>;
}

/// Runs commands for real with `std::process::Command`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRunner;

impl Runner for SystemRunner {
    fn run(
        &self,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
        stdin: Option<&str>,
    ) -> std::io::Result<Output> {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .envs(env.iter().copied())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        Ok(Output {
            status: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// Stands in for host-wide commands under a root other than `/`: prints the command
/// line on stdout, runs nothing, answers success.
#[derive(Debug, Default, Clone, Copy)]
pub struct NotRun;

impl NotRun {
    /// The line printed for a command that is not run.
    pub fn line(what: &str) -> String {
        format!("not run (--root is not /): {what}")
    }
}

impl Runner for NotRun {
    fn run(
        &self,
        program: &str,
        args: &[&str],
        _env: &[(&str, &str)],
        _stdin: Option<&str>,
    ) -> std::io::Result<Output> {
        println!("{}", NotRun::line(&format!("{program} {}", args.join(" "))));
        Ok(Output {
            status: Some(0),
            ..Output::default()
        })
    }
}

/// Runs commands under coreutils' `timeout SECS`, so a command that hangs (an API server
/// that does not answer) ends with status 124 instead of holding its caller forever.
#[derive(Debug, Clone, Copy)]
pub struct Bounded<R = SystemRunner> {
    pub secs: u32,
    pub inner: R,
}

impl Bounded {
    /// `timeout SECS …` run for real.
    pub fn new(secs: u32) -> Self {
        Bounded {
            secs,
            inner: SystemRunner,
        }
    }
}

impl<R: Runner> Runner for Bounded<R> {
    fn run(
        &self,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
        stdin: Option<&str>,
    ) -> std::io::Result<Output> {
        let secs = self.secs.to_string();
        let mut all = vec![secs.as_str(), program];
        all.extend_from_slice(args);
        self.inner.run("timeout", &all, env, stdin)
    }
}

/// A fake that records every invocation and answers from a script of canned outputs
/// (matched by the first canned entry whose program and leading args fit; default:
/// success with empty output).
#[derive(Debug, Default)]
pub struct RecordingRunner {
    calls: Mutex<Vec<Invocation>>,
    answers: Mutex<Vec<(Vec<String>, Output)>>,
}

impl RecordingRunner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers `output` to commands whose program + args start with `prefix`.
    pub fn answer(&self, prefix: &[&str], output: Output) {
        self.answers
            .lock()
            .expect("poisoned")
            .push((prefix.iter().map(|s| s.to_string()).collect(), output));
    }

    /// Every invocation so far, in order.
    pub fn calls(&self) -> Vec<Invocation> {
        self.calls.lock().expect("poisoned").clone()
    }
}

impl<R: Runner + ?Sized> Runner for &R {
    fn run(
        &self,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
        stdin: Option<&str>,
    ) -> std::io::Result<Output> {
        (**self).run(program, args, env, stdin)
    }
}

impl Runner for RecordingRunner {
    fn run(
        &self,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
        stdin: Option<&str>,
    ) -> std::io::Result<Output> {
        self.calls.lock().expect("poisoned").push(Invocation {
            program: program.to_string(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            stdin: stdin.map(str::to_string),
        });
        let line: Vec<&str> = std::iter::once(program)
            .chain(args.iter().copied())
            .collect();
        let answers = self.answers.lock().expect("poisoned");
        let found = answers.iter().find(|(prefix, _)| {
            prefix.len() <= line.len() && prefix.iter().zip(&line).all(|(a, b)| a == b)
        });
        Ok(found.map(|(_, o)| o.clone()).unwrap_or(Output {
            status: Some(0),
            ..Output::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_prefixes_timeout_and_its_seconds() {
        let rec = RecordingRunner::new();
        let b = Bounded {
            secs: 20,
            inner: &rec,
        };
        b.run("k3s", &["token", "create"], &[], None).unwrap();
        assert_eq!(rec.calls()[0].display(), "timeout 20 k3s token create");
    }

    #[test]
    fn not_run_answers_success() {
        assert!(
            NotRun
                .run("systemctl", &["daemon-reload"], &[], None)
                .unwrap()
                .success()
        );
    }
}
