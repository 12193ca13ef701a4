//! evalgate: is prompting a general model enough for a narrow task, or does a fine-tuned model do
//! better — and what does each cost per correct answer?
//!
//! Data flows one way: a [`suite`] is loaded and validated, the [`runner`] sends every item to
//! every backend and appends [`journal`] records, and [`score`] and [`report`] read the journal.

pub mod backend;
pub mod cli;
pub mod cost;
pub mod error;
pub mod field;
pub mod gate;
pub mod journal;
pub mod local_model;
pub mod merge;
pub mod parse;
pub mod prompt;
pub mod report;
pub mod runner;
pub mod score;
pub mod stats;
pub mod suite;
pub mod text;
pub mod time;

pub use error::{Error, Result};
