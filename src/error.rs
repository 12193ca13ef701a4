//! Error types. Each carries what a user needs to fix the problem; they are formatted once, at
//! the edge (`main`), never printed from inside the library.

use std::fmt;
use std::path::PathBuf;

/// One problem found in a suite or its data, located by file, line and key path.
#[derive(Debug, Clone, PartialEq)]
pub struct SuiteProblem {
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// Key path in the suite (`backends[2].strategy`) or column name in a data file.
    pub key: Option<String>,
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl SuiteProblem {
    pub fn new(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        SuiteProblem {
            file: file.into(),
            line: None,
            key: None,
            message: message.into(),
            hint: None,
        }
    }
    pub fn line(mut self, line: impl Into<Option<u64>>) -> Self {
        self.line = line.into().filter(|&l| l > 0);
        self
    }
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for SuiteProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": `{key}`")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found while loading and validating a suite: all are reported at once, so a user
/// fixes a suite in one pass rather than one error per run.
#[derive(Debug, Clone, PartialEq)]
pub struct SuiteErrors(pub Vec<SuiteProblem>);

impl fmt::Display for SuiteErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "the suite has {n} problem{}:", if n == 1 { "" } else { "s" })?;
        for problem in &self.0 {
            write!(f, "\n- {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SuiteErrors {}

impl From<SuiteProblem> for SuiteErrors {
    fn from(problem: SuiteProblem) -> Self {
        SuiteErrors(vec![problem])
    }
}

/// Errors of the library's operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Suite(#[from] SuiteErrors),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: {message}")]
    Journal { path: PathBuf, line: u64, message: String },
    #[error(
        "{path}: written with run schema version {found}; this evalgate reads version {supported}. \
         Rebuild the report with the evalgate version that made the run, or run the suite again"
    )]
    SchemaVersion { path: PathBuf, found: u32, supported: u32 },
    #[error("backend `{backend}`: {source}")]
    Training { backend: String, source: crate::backend::local::TrainError },
    #[error("{0}")]
    Cache(#[from] crate::backend::cache::CacheError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Cost(#[from] crate::cost::CostError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("statistics: {0}")]
    Stats(#[from] crate::stats::StatsError),
    #[error("{0}")]
    Backend(String),
    /// The gate cannot judge the run (a gated backend missing or skipped).
    #[error("gate: {0}")]
    Gate(String),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
