//! Scores computed from a run's journal: per backend, per class, per item.

pub mod analysis;
mod classification;
pub mod compare;
pub mod cost;
pub mod extraction;
pub mod history;
pub mod judge;
pub mod run_diff;

pub use compare::DEFAULT_MARGIN;

pub use classification::{
    clustered_accuracy, repeated_samples_accuracy, score_run, AccuracyMethod, BackendScores,
    ClassScores, ClusteredAccuracy, Outcome, RecordView, RunScores, RunScoring, CONFIDENCE,
};
