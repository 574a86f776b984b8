//! What every example shares: errors that say what failed and on which path
//! or address, printed with `Display` (never the `Debug` of a `main` that
//! returns `Result`), exit status 1 for a failure and 2, with the usage, for
//! a bad command line.

use std::fmt;
use std::path::Path;
use std::process::ExitCode;

/// A failure, said the way `cp` says it: `cannot open 'x': No such file or
/// directory (os error 2)`.
#[derive(Debug)]
pub(crate) struct Error(String);

impl Error {
    /// `{doing} '{path}': {cause}`.
    pub(crate) fn at(doing: &str, path: &Path, cause: impl fmt::Display) -> Error {
        Error(format!("{doing} '{}': {cause}", path.display()))
    }

    /// A message of its own.
    pub(crate) fn new(message: impl fmt::Display) -> Error {
        Error(message.to_string())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// `result.context("cannot set up a ring")?`: the error becomes
/// `{doing}: {cause}`.
pub(crate) trait Context<T> {
    /// Says what was being done when the error happened.
    fn context(self, doing: impl fmt::Display) -> Result<T, Error>;
}

impl<T, E: fmt::Display> Context<T> for Result<T, E> {
    fn context(self, doing: impl fmt::Display) -> Result<T, Error> {
        self.map_err(|e| Error(format!("{doing}: {e}")))
    }
}

/// Ends an example: nothing on success, `{name}: {error}` and status 1 on
/// failure.
pub(crate) fn exit(name: &str, result: Result<(), Error>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Ends an example whose command line was refused: `{name}: {why}`, the
/// usage line, status 2.
pub(crate) fn usage(name: &str, usage: &str, why: impl fmt::Display) -> ExitCode {
    eprintln!("{name}: {why}");
    eprintln!("usage: {name} {usage}");
    ExitCode::from(2)
}
