//! The crate's error type: every variant names what was wrong (an entry, a digest, a file).
use std::io;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("layer {layer}: tar entry {entry:?}: {reason}")]
    BadEntry {
        layer: String,
        entry: String,
        reason: String,
    },
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("malformed {what}: {reason}")]
    Malformed { what: String, reason: String },
    #[error("{what} {digest} is missing from {source_name}")]
    Missing {
        what: String,
        digest: String,
        source_name: String,
    },
    #[error("image {0:?} not found")]
    NoImage(String),
    #[error("{0}")]
    Invalid(String),
    /// the registry answered with an error, or could not be reached
    #[error("{0}")]
    Registry(String),
    /// the registry answered an HTTP error status
    #[error("{what}: {detail}")]
    Status {
        what: String,
        status: u16,
        detail: String,
    },
    /// credentials missing or refused
    #[error("authentication: {0}")]
    Auth(String),
    /// a Dockerfile that cannot be parsed or built as written
    #[error("{file}:{line}: {msg}")]
    Dockerfile {
        file: String,
        line: usize,
        msg: String,
    },
    /// a build step failed (the cause is part of the message)
    #[error("step {step}/{total} `{instruction}`: {cause}")]
    Step {
        step: usize,
        total: usize,
        instruction: String,
        cause: Box<Error>,
    },
    /// a process (a RUN step's command) ended with a non-zero status
    #[error("{what} exited with status {status}")]
    Exit { what: String, status: i32 },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds a context string to io errors (`.ctx(|| format!("open {path}"))`).
pub trait IoContext<T> {
    fn ctx<S: Into<String>>(self, f: impl FnOnce() -> S) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx<S: Into<String>>(self, f: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: f().into(),
            source,
        })
    }
}

pub fn malformed(what: impl Into<String>, reason: impl std::fmt::Display) -> Error {
    Error::Malformed {
        what: what.into(),
        reason: reason.to_string(),
    }
}
