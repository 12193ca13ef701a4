//! The `local` backend: the built-in TF-IDF + linear SVM classifier, trained on `data.train`.
//! It needs no network and no key, and gives every report the line a language model must beat.

pub mod classifier;

use crate::backend::{BackendError, Completion, ErrorKind, Usage};
use crate::prompt::{ChatMessage, PromptTemplates, Role};
use crate::suite::Suite;
use classifier::{LocalModel, LocalModelConfig};

pub struct LocalBackend {
    model: LocalModel,
    labels: Vec<String>,
}

/// Why the built-in classifier could not be trained.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("the local backend needs `data.train`")]
    NoTrainingData,
    #[error("item `{item}`: {source}")]
    Render { item: String, source: minijinja::Error },
    #[error("item `{item}` has an unknown label")]
    UnknownLabel { item: String },
}

impl LocalBackend {
    /// Trains on the rendered `input` of every train item, the same text it is later asked about.
    pub fn train(suite: &Suite, templates: &PromptTemplates) -> Result<Self, TrainError> {
        let train = suite.train.as_ref().ok_or(TrainError::NoTrainingData)?;
        let mut texts = Vec::with_capacity(train.items.len());
        let mut labels = Vec::with_capacity(train.items.len());
        for item in &train.items {
            texts.push(
                templates
                    .render_input(item)
                    .map_err(|e| TrainError::Render { item: item.id.clone(), source: e })?,
            );
            labels.push(
                suite
                    .task
                    .label_index(&item.label)
                    .ok_or_else(|| TrainError::UnknownLabel { item: item.id.clone() })?,
            );
        }
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let model = LocalModel::train(
            &refs,
            &labels,
            suite.task.labels.len(),
            &LocalModelConfig::default(),
        );
        Ok(LocalBackend { model, labels: suite.task.labels.clone() })
    }

    pub fn complete(&self, messages: &[ChatMessage]) -> Result<Completion, BackendError> {
        let input =
            messages.iter().rev().find(|m| m.role == Role::User).ok_or_else(|| {
                BackendError::new(ErrorKind::Internal, "no user message to classify")
            })?;
        let label = &self.labels[self.model.predict(&input.content)];
        // No language model, so no tokens: zero is the true count, not an unknown.
        Ok(Completion {
            text: label.clone(),
            usage: Some(Usage::default()),
            finish_reason: None,
            reasoning: None,
        })
    }
}
