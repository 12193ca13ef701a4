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
pub mod field;
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
