//! Every run of one suite under a folder, oldest first: the periodic review of how each backend's
//! accuracy and cost per correct answer moved. Each run is analysed by the same [`analyse`] that
//! writes its `results.json`, so a report built from a [`History`] shows the same figures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::journal::{RunMeta, META_FILE, RECORDS_FILE};

use super::analysis::{analyse, Analysis};

/// Why no history could be built.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{dir}: no run directories (folders holding run.json and records.jsonl) under it")]
    NoRuns { dir: PathBuf },
    #[error("{dir}: no runs of suite `{suite}`; the runs found are of: {found}")]
    NoRunsOfSuite { dir: PathBuf, suite: String, found: String },
    #[error("{dir}: runs of several suites were found ({found}); choose one with --suite NAME")]
    SeveralSuites { dir: PathBuf, found: String },
    #[error(transparent)]
    Run(#[from] Error),
}

/// The runs of one suite, oldest first.
#[derive(Debug, Clone)]
pub struct History {
    pub suite: String,
    pub runs: Vec<HistoryRun>,
}

/// One run with its analysis.
#[derive(Debug, Clone)]
pub struct HistoryRun {
    pub dir: PathBuf,
    pub meta: RunMeta,
    pub analysis: Analysis,
}

impl History {
    /// Backend ids in order of first appearance, oldest run first.
    pub fn backend_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = Vec::new();
        for run in &self.runs {
            for b in &run.meta.backends {
                if !ids.contains(&b.id.as_str()) {
                    ids.push(&b.id);
                }
            }
        }
        ids
    }
}

/// Every run directory under `dir` (recursively, `dir` included), sorted by path.
pub fn find_runs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if d.join(META_FILE).is_file() && d.join(RECORDS_FILE).is_file() {
            found.push(d.clone());
        }
        let entries = std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&d, e))?;
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            // Hidden folders hold caches, not runs; symlinked folders could loop.
            let is_dir = entry.file_type().map_err(|e| Error::io(entry.path(), e))?.is_dir();
            if is_dir && !hidden {
                stack.push(entry.path());
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The history of the suite named `suite` (or of the only suite found) under `dir`.
pub fn history(dir: &Path, suite: Option<&str>) -> Result<History, HistoryError> {
    let mut by_suite: BTreeMap<String, Vec<(PathBuf, RunMeta)>> = BTreeMap::new();
    for run in find_runs(dir)? {
        let meta = RunMeta::read(&run)?;
        by_suite.entry(meta.suite.name.clone()).or_default().push((run, meta));
    }
    let listing = |m: &BTreeMap<String, Vec<(PathBuf, RunMeta)>>| {
        m.iter()
            .map(|(name, runs)| {
                format!("`{name}` ({} run{})", runs.len(), if runs.len() == 1 { "" } else { "s" })
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    if by_suite.is_empty() {
        return Err(HistoryError::NoRuns { dir: dir.to_path_buf() });
    }
    let (name, mut runs) = match suite {
        Some(name) => match by_suite.remove(name) {
            Some(runs) => (name.to_string(), runs),
            None => {
                return Err(HistoryError::NoRunsOfSuite {
                    dir: dir.to_path_buf(),
                    suite: name.to_string(),
                    found: listing(&by_suite),
                })
            }
        },
        None if by_suite.len() > 1 => {
            return Err(HistoryError::SeveralSuites {
                dir: dir.to_path_buf(),
                found: listing(&by_suite),
            })
        }
        None => by_suite.pop_first().expect("one suite"),
    };
    // RFC 3339 UTC times sort as text; the path breaks ties, so the order is stable.
    runs.sort_by(|(pa, a), (pb, b)| a.started_at.cmp(&b.started_at).then(pa.cmp(pb)));
    let runs = runs
        .into_iter()
        .map(|(dir, meta)| {
            let analysis = analyse(&dir, &meta)?;
            Ok(HistoryRun { dir, meta, analysis })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(History { suite: name, runs })
}
