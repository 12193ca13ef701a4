//! Prompts: templates rendered with item data, arranged into chat messages per strategy.
//!
//! Item text is data, never template: values are passed to minijinja as context, so a ticket
//! that contains `{{ ... }}` appears in the prompt exactly as written.

mod check;
mod fewshot;
pub mod schema;
pub mod similar;

use minijinja::{Environment, UndefinedBehavior, Value};
use serde::{Deserialize, Serialize};

pub use check::check_templates;
pub use fewshot::{Demo, FewShotSelector};

use crate::suite::{Item, Strategy, Suite, Task};

/// One chat message, as sent and as journaled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> Self {
        ChatMessage { role: Role::System, content: content.into() }
    }
    pub fn user(content: impl Into<String>) -> Self {
        ChatMessage { role: Role::User, content: content.into() }
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        ChatMessage { role: Role::Assistant, content: content.into() }
    }
}

/// A rough token count, for servers that report no usage and for estimates made before sending:
/// about four characters a token for English text, plus a few tokens of chat formatting per
/// message.
pub fn estimate_tokens<'a>(texts: impl Iterator<Item = &'a str>) -> u64 {
    texts.map(|t| (t.chars().count() as u64).div_ceil(4) + 4).sum()
}

/// The task's templates, compiled once with strict undefined variables.
pub struct PromptTemplates {
    env: Environment<'static>,
    labels: Value,
    /// The names of an extraction task's fields; empty for classification.
    fields: Value,
}

const TEMPLATE_NAMES: [&str; 3] = ["instructions", "input", "fine_tuned_instructions"];

impl PromptTemplates {
    /// Compiles the task's templates; on a syntax error returns the template's name and error.
    pub fn compile(task: &Task) -> Result<Self, (&'static str, minijinja::Error)> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Prompts are plain text: no HTML escaping of `<`, `&` or quotes.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        let sources = [
            task.instructions.clone(),
            task.input.clone(),
            task.fine_tuned_instructions.clone().unwrap_or_default(),
        ];
        for (name, source) in TEMPLATE_NAMES.into_iter().zip(sources) {
            env.add_template_owned(name, source).map_err(|e| (name, e))?;
        }
        let fields: Vec<&str> = task.fields.iter().map(|f| f.name.as_str()).collect();
        Ok(PromptTemplates {
            env,
            labels: Value::from(minijinja::value::Serde(&task.labels)),
            fields: Value::from(minijinja::value::Serde(&fields)),
        })
    }

    /// Variables a template reads from its context.
    pub fn variables(&self, name: &str) -> Vec<String> {
        let mut vars: Vec<String> = self
            .env
            .get_template(name)
            .map(|t| t.undeclared_variables(false).into_iter().collect())
            .unwrap_or_default();
        vars.sort();
        vars
    }

    pub fn render_input(&self, item: &Item) -> Result<String, minijinja::Error> {
        render_fields(&self.env, "input", &item.fields)
    }

    fn render_with_labels(&self, name: &str) -> Result<String, minijinja::Error> {
        let template = self.env.get_template(name)?;
        template.render(
            minijinja::context! { labels => self.labels.clone(), fields => self.fields.clone() },
        )
    }
}

fn render_fields(
    env: &Environment<'static>,
    name: &str,
    fields: &crate::suite::Fields,
) -> Result<String, minijinja::Error> {
    let template = env.get_template(name)?;
    template.render(Value::from(minijinja::value::Serde(fields)))
}

/// Builds the messages for each item under one backend's strategy.
pub struct PromptBuilder {
    templates: std::sync::Arc<PromptTemplates>,
    system: Option<String>,
    few_shot: Option<FewShotSelector>,
}

impl PromptBuilder {
    pub fn new(
        suite: &Suite,
        templates: std::sync::Arc<PromptTemplates>,
        strategy: &Strategy,
    ) -> Result<Self, minijinja::Error> {
        let system = match strategy {
            Strategy::ZeroShot | Strategy::FewShot(_) => {
                Some(templates.render_with_labels("instructions")?)
            }
            Strategy::FineTuned => match &suite.task.fine_tuned_instructions {
                Some(_) => Some(templates.render_with_labels("fine_tuned_instructions")?),
                None => None,
            },
            Strategy::Local => None,
        };
        let mut system = system.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        // An extraction prompt says which keys to answer with. A fine-tuned model learnt that in
        // training, and its prompt must stay the one it was trained on.
        if !suite.task.fields.is_empty()
            && matches!(strategy, Strategy::ZeroShot | Strategy::FewShot(_))
        {
            let format = schema::format_instructions(&suite.task.fields);
            system = Some(match system {
                Some(s) => format!("{s}\n\n{format}"),
                None => format,
            });
        }
        let few_shot = match (strategy, &suite.train) {
            (Strategy::FewShot(config), Some(train)) => {
                Some(FewShotSelector::new(config.clone(), train, &templates)?)
            }
            _ => None,
        };
        Ok(PromptBuilder { templates, system, few_shot })
    }

    /// The messages sent for `item`.
    pub fn messages(&self, item: &Item) -> Result<Vec<ChatMessage>, minijinja::Error> {
        let input = self.templates.render_input(item)?;
        let mut messages = Vec::with_capacity(2 + self.few_shot.as_ref().map_or(0, |f| 2 * f.k()));
        if let Some(system) = &self.system {
            messages.push(ChatMessage::system(system.clone()));
        }
        if let Some(selector) = &self.few_shot {
            for demo in selector.select(&item.id, &input) {
                messages.push(ChatMessage::user(demo.input.clone()));
                messages.push(ChatMessage::assistant(demo.label.clone()));
            }
        }
        messages.push(ChatMessage::user(input));
        Ok(messages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::TaskKind;

    fn task() -> Task {
        Task {
            kind: TaskKind::Classification,
            labels: vec!["a".into(), "b".into()],
            instructions: "Pick one of: {{ labels | join(\", \") }}.".into(),
            input: "Text: {{ text }}".into(),
            fine_tuned_instructions: None,
            fields: Vec::new(),
            template_lines: Default::default(),
        }
    }

    fn item(text: &str) -> Item {
        let fields = crate::suite::Fields::from_pairs([(
            "text",
            serde_json::Value::String(text.to_string()),
        )]);
        Item { id: "1".into(), fields, label: "a".into(), line: 2, group: None }
    }

    #[test]
    fn example_text_is_inserted_not_rendered() {
        let t = PromptTemplates::compile(&task()).unwrap();
        let text = "Hi {{ customer_name }}, {% if x %}<b>&{% endif %}";
        assert_eq!(t.render_input(&item(text)).unwrap(), format!("Text: {text}"));
    }

    #[test]
    fn instructions_see_labels() {
        let t = PromptTemplates::compile(&task()).unwrap();
        assert_eq!(t.render_with_labels("instructions").unwrap(), "Pick one of: a, b.");
    }

    #[test]
    fn a_suite_without_instructions_sends_no_system_turn() {
        let yaml = r#"schema_version: 1
name: bare
task: { kind: classification, labels: [a, b], input: "Answer a or b: {{ text }}" }
data:
  test: [{ id: t1, text: "x", label: a }]
  train: [{ id: r1, text: "y", label: b }, { id: r2, text: "z", label: a }]
backends: [{ id: m, provider: openai, model: m, base_url: "http://localhost:1/v1" }]
"#;
        let suite = crate::suite::load_str(std::path::Path::new("bare.yaml"), yaml).unwrap();
        crate::prompt::check_templates(&suite).unwrap();
        let templates = std::sync::Arc::new(PromptTemplates::compile(&suite.task).unwrap());
        let few = Strategy::FewShot(crate::suite::FewShot {
            k: 1,
            select: crate::suite::Selection::Random,
            seed: 0,
            ids: vec![],
        });
        for strategy in [Strategy::ZeroShot, Strategy::FineTuned, few] {
            let builder = PromptBuilder::new(&suite, templates.clone(), &strategy).unwrap();
            let messages = builder.messages(&suite.test.items[0]).unwrap();
            assert!(messages.iter().all(|m| m.role != Role::System), "{strategy:?}: {messages:?}");
            assert_eq!(messages.last().unwrap().content, "Answer a or b: x");
        }
    }

    #[test]
    fn undefined_variables_are_errors() {
        let mut bad = task();
        bad.input = "{{ missing }}".into();
        let t = PromptTemplates::compile(&bad).unwrap();
        assert!(t.render_input(&item("x")).is_err());
        assert_eq!(t.variables("input"), vec!["missing".to_string()]);
    }
}
