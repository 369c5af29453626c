//! What a command tells its user, one [`Line`] at a time, and the stream each belongs
//! on: stdout holds what the command made or found (what scripts read), stderr its
//! progress, warnings and advice. Libraries render their events and outcomes as lines;
//! the binary only writes them.

/// One line (or a few, joined by `\n`) of a command's report, with its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// The result: standard output.
    Out(String),
    /// Progress, a warning, what to do next: standard error.
    Err(String),
}

impl Line {
    /// The text, without its stream.
    pub fn text(&self) -> &str {
        match self {
            Line::Out(t) | Line::Err(t) => t,
        }
    }
}
