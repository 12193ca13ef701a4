//! evalgate: is prompting a general model enough for a narrow task, or does a fine-tuned model do
//! better — and what does each cost per correct answer?
//!
//! Data flows one way: a [`suite`] is loaded and validated, a [`plan`] resolves it with the run's
//! options before any request is sent, the [`runner`] executes the plan through the [`backend`]s
//! and appends [`journal`] records, and [`score`] and [`report`] read the journal.

pub mod backend;
pub mod cli;
pub mod cost;
pub mod error;
pub mod export;
pub mod field;
pub mod gate;
pub mod init;
pub mod journal;
pub mod parse;
pub mod plan;
pub mod prompt;
pub mod report;
pub mod runner;
pub mod score;
pub mod stats;
pub mod suite;
pub mod text;
pub mod time;

pub use error::{Error, Result};

/// Settings shared by the property tests beside each module.
#[cfg(test)]
pub(crate) mod testing {
    /// `cases` random cases per property, and no `proptest-regressions/` files: a failure prints
    /// its shrunk case, which belongs in a unit test. `PROPTEST_RNG_SEED` replays a run.
    pub fn proptest_config(cases: u32) -> proptest::test_runner::Config {
        proptest::test_runner::Config { cases, failure_persistence: None, ..Default::default() }
    }
}
