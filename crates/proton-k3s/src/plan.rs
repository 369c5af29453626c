//! A plan: files to write and commands to run, that can be shown (`--dry-run`) or done.

use proton_core::host::{Root, mode_of};

use crate::Error;
use crate::config::PlannedFile;
use proton_core::host::Runner;

/// A command a plan runs. Carries no environment: secrets never sit in a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedCommand {
    pub program: String,
    pub args: Vec<String>,
}

impl PlannedCommand {
    pub fn new(program: &str, args: &[&str]) -> Self {
        PlannedCommand {
            program: program.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl std::fmt::Display for PlannedCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.program)?;
        for a in &self.args {
            write!(f, " {a}")?;
        }
        Ok(())
    }
}

/// How a planned file differs from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    Missing,
    Differs,
    ModeDiffers { on_disk: u32 },
    Same,
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub files: Vec<PlannedFile>,
    pub commands: Vec<PlannedCommand>,
}

impl Plan {
    pub fn state(&self, root: &Root, file: &PlannedFile) -> Result<FileState, Error> {
        let Some(current) = root.read_optional(&file.path)? else {
            return Ok(FileState::Missing);
        };
        if current != file.contents {
            return Ok(FileState::Differs);
        }
        let on_disk = mode_of(&root.path(&file.path))? & 0o7777;
        Ok(if on_disk == file.mode {
            FileState::Same
        } else {
            FileState::ModeDiffers { on_disk }
        })
    }

    /// Host paths of the files that would change.
    pub fn changed(&self, root: &Root) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        for f in &self.files {
            if self.state(root, f)? != FileState::Same {
                out.push(f.path.clone());
            }
        }
        Ok(out)
    }

    /// A unified diff of every file that would change (secret files: a note, never
    /// their contents), then the commands. Changes nothing.
    pub fn dry_run(&self, root: &Root) -> Result<String, Error> {
        let mut out = String::new();
        for f in &self.files {
            let state = self.state(root, f)?;
            match state {
                FileState::Same => continue,
                FileState::ModeDiffers { on_disk } => {
                    out.push_str(&format!("mode {}: {on_disk:o} -> {:o}\n", f.path, f.mode));
                    continue;
                }
                FileState::Missing | FileState::Differs => {}
            }
            if f.secret {
                out.push_str(&format!(
                    "secret {} would be written (contents hidden)\n",
                    f.path
                ));
                continue;
            }
            let old = root.read_optional(&f.path)?.unwrap_or_default();
            let old_name = if state == FileState::Missing {
                "/dev/null".to_string()
            } else {
                format!("a{}", f.path)
            };
            let diff = similar::TextDiff::from_lines(&old, &f.contents);
            out.push_str(
                &diff
                    .unified_diff()
                    .header(&old_name, &format!("b{}", f.path))
                    .to_string(),
            );
        }
        for c in &self.commands {
            out.push_str(&format!("run: {c}\n"));
        }
        Ok(out)
    }

    /// Writes the files that differ; returns their host paths (feed them to
    /// [`crate::needs_restart`]).
    pub fn write_files(&self, root: &Root) -> Result<Vec<String>, Error> {
        let changed = self.changed(root)?;
        for f in self.files.iter().filter(|f| changed.contains(&f.path)) {
            root.write(&f.path, f.contents.as_bytes(), f.mode)?;
        }
        Ok(changed)
    }

    /// Runs the commands in order, stopping at the first failure.
    pub fn run_commands(&self, runner: &dyn Runner) -> Result<(), Error> {
        for c in &self.commands {
            let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
            let out = runner
                .run(&c.program, &args, &[], None)
                .map_err(|e| Error::Command {
                    command: c.to_string(),
                    reason: e.to_string(),
                })?;
            if !out.success() {
                return Err(Error::Command {
                    command: c.to_string(),
                    reason: out.stderr.trim().lines().last().unwrap_or("failed").into(),
                });
            }
        }
        Ok(())
    }
}
