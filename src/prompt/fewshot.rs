//! Choosing few-shot demonstrations from the train pool.
//!
//! Each item gets its own draw from a generator seeded by the suite's seed and the item's id, so
//! the demonstrations of an item do not depend on run order, `--limit` or sharding, and a rerun
//! sends byte-identical prompts (which the response cache relies on).

use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::PromptTemplates;
use crate::suite::{Dataset, FewShot, Selection};

/// One demonstration: the rendered input and its gold label.
#[derive(Debug, Clone)]
pub struct Demo {
    pub id: String,
    pub input: String,
    pub label: String,
}

pub struct FewShotSelector {
    config: FewShot,
    pool: Vec<Demo>,
    /// Pool indices per label, labels in sorted order for determinism.
    by_label: Vec<Vec<usize>>,
    /// Pool indices of `config.ids`, for fixed selection.
    fixed: Vec<usize>,
    /// TF-IDF over the pool's rendered inputs, for similar selection.
    tfidf: Option<super::similar::TfIdf>,
}

impl FewShotSelector {
    pub fn new(
        config: FewShot,
        train: &Dataset,
        templates: &PromptTemplates,
    ) -> Result<Self, minijinja::Error> {
        let mut pool = Vec::with_capacity(train.items.len());
        for item in &train.items {
            pool.push(Demo {
                id: item.id.clone(),
                input: templates.render_input(item)?,
                label: item.label.clone(),
            });
        }
        let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, demo) in pool.iter().enumerate() {
            groups.entry(demo.label.as_str()).or_default().push(i);
        }
        let by_label = groups.into_values().collect();
        let fixed =
            config.ids.iter().filter_map(|id| pool.iter().position(|d| &d.id == id)).collect();
        let tfidf = (config.select == Selection::Similar)
            .then(|| super::similar::TfIdf::fit(pool.iter().map(|d| d.input.as_str())));
        Ok(FewShotSelector { config, pool, by_label, fixed, tfidf })
    }

    pub fn k(&self) -> usize {
        self.config.k
    }

    /// Demonstrations for the item with `item_id` whose rendered input is `item_input`. A pool
    /// entry with the same input text is never shown: it would hand the model the answer.
    pub fn select(&self, item_id: &str, item_input: &str) -> Vec<&Demo> {
        let usable = |i: usize| self.pool[i].input != item_input;
        let mut rng = ChaCha8Rng::seed_from_u64(item_seed(self.config.seed, item_id));
        let chosen: Vec<usize> = match self.config.select {
            Selection::Fixed => self.fixed.iter().copied().filter(|&i| usable(i)).collect(),
            Selection::Random => self.random(&mut rng, &usable),
            Selection::Stratified => self.stratified(&mut rng, &usable),
            Selection::Similar => self.similar(item_input, &usable),
        };
        chosen.into_iter().map(|i| &self.pool[i]).collect()
    }

    fn random(&self, rng: &mut ChaCha8Rng, usable: &dyn Fn(usize) -> bool) -> Vec<usize> {
        let n = self.pool.len();
        let k = self.config.k.min(n);
        let mut chosen = Vec::with_capacity(k);
        // Rejection sampling: k is small next to the pool, so this takes about k draws; the bound
        // guards against a pool made mostly of copies of the item.
        let mut tries = 0;
        while chosen.len() < k && tries < 64 * (k + 1) {
            tries += 1;
            let i = rng.random_range(0..n);
            if usable(i) && !chosen.contains(&i) {
                chosen.push(i);
            }
        }
        if chosen.len() < k {
            for i in 0..n {
                if chosen.len() == k {
                    break;
                }
                if usable(i) && !chosen.contains(&i) {
                    chosen.push(i);
                }
            }
        }
        chosen
    }

    /// The k pool entries nearest to the item by TF-IDF cosine (ties by id), leaving out copies
    /// and near-duplicates of the item (character 5-gram Jaccard at or above the leakage
    /// threshold, after normalisation): a near-copy would hand the model the answer.
    fn similar(&self, item_input: &str, usable: &dyn Fn(usize) -> bool) -> Vec<usize> {
        let Some(tfidf) = &self.tfidf else { return Vec::new() };
        let mut scored = tfidf.scores(item_input);
        scored.sort_by(|a, b| {
            b.1.total_cmp(&a.1).then_with(|| self.pool[a.0].id.cmp(&self.pool[b.0].id))
        });
        let item = crate::text::normalize(item_input);
        let item_shingles = crate::suite::leakage::shingles(&item);
        let far = |i: usize| {
            let other = crate::text::normalize(&self.pool[i].input);
            other != item
                && crate::suite::leakage::jaccard(
                    &item_shingles,
                    &crate::suite::leakage::shingles(&other),
                ) < crate::suite::leakage::NEAR_DUPLICATE_JACCARD
        };
        let mut chosen: Vec<usize> = scored
            .into_iter()
            .map(|(i, _)| i)
            .filter(|&i| usable(i) && far(i))
            .take(self.config.k)
            .collect();
        // An item sharing no word with enough of the pool: fill up in id order.
        if chosen.len() < self.config.k {
            let mut rest: Vec<usize> = (0..self.pool.len())
                .filter(|i| !chosen.contains(i) && usable(*i) && far(*i))
                .collect();
            rest.sort_by(|&a, &b| self.pool[a].id.cmp(&self.pool[b].id));
            chosen.extend(rest.into_iter().take(self.config.k - chosen.len()));
        }
        chosen
    }

    /// The TF-IDF cosine of an item's input with a demonstration (for `similar` selection;
    /// `None` for other selections).
    pub fn cosine(&self, item_input: &str, demo: &Demo) -> Option<f32> {
        let tfidf = self.tfidf.as_ref()?;
        let i = self.pool.iter().position(|d| std::ptr::eq(d, demo))?;
        Some(tfidf.cosine(item_input, i))
    }

    /// Round-robin over labels in a per-item random order, so k demonstrations cover
    /// min(k, labels) distinct labels.
    fn stratified(&self, rng: &mut ChaCha8Rng, usable: &dyn Fn(usize) -> bool) -> Vec<usize> {
        let mut groups: Vec<Vec<usize>> = self.by_label.clone();
        groups.shuffle(rng);
        for g in &mut groups {
            g.shuffle(rng);
            g.retain(|&i| usable(i));
        }
        let k = self.config.k;
        let mut chosen = Vec::with_capacity(k);
        let mut round = 0;
        while chosen.len() < k {
            let mut took = false;
            for g in &groups {
                if chosen.len() == k {
                    break;
                }
                if let Some(&i) = g.get(round) {
                    chosen.push(i);
                    took = true;
                }
            }
            if !took {
                break;
            }
            round += 1;
        }
        chosen
    }
}

/// A stable 64-bit seed from the suite seed and an item id (FNV-1a, then SplitMix64 mixing).
fn item_seed(seed: u64, id: &str) -> u64 {
    let mut z = crate::text::stable_hash(id) ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::{Item, Task, TaskKind};

    fn dataset(n: usize, labels: &[&str]) -> Dataset {
        let items = (0..n)
            .map(|i| {
                let fields = crate::suite::Fields::from_pairs([(
                    "text",
                    serde_json::Value::String(format!("text {i}")),
                )]);
                Item {
                    id: format!("tr-{i}"),
                    fields,
                    label: labels[i % labels.len()].to_string(),
                    line: i as u64 + 2,
                    group: None,
                }
            })
            .collect();
        Dataset { origin: "train.csv".into(), items }
    }

    fn templates() -> PromptTemplates {
        PromptTemplates::compile(&Task {
            kind: TaskKind::Classification,
            labels: vec!["a".into(), "b".into(), "c".into()],
            instructions: "x".into(),
            input: "{{ text }}".into(),
            fine_tuned_instructions: None,
            fields: Vec::new(),
            template_lines: Default::default(),
        })
        .unwrap()
    }

    fn selector(select: Selection, k: usize, ids: Vec<String>) -> FewShotSelector {
        let config = FewShot { k, select, seed: 7, ids };
        FewShotSelector::new(config, &dataset(30, &["a", "b", "c"]), &templates()).unwrap()
    }

    #[test]
    fn selection_is_reproducible_and_depends_on_item() {
        for select in [Selection::Random, Selection::Stratified] {
            let s = selector(select, 4, vec![]);
            let a: Vec<_> = s.select("te-1", "query").iter().map(|d| d.id.clone()).collect();
            let b: Vec<_> = s.select("te-1", "query").iter().map(|d| d.id.clone()).collect();
            assert_eq!(a, b);
            assert_eq!(a.len(), 4);
            let others: Vec<Vec<String>> = (2..10)
                .map(|i| s.select(&format!("te-{i}"), "q").iter().map(|d| d.id.clone()).collect())
                .collect();
            assert!(others.iter().any(|o| o != &a), "every item drew the same demonstrations");
        }
    }

    #[test]
    fn stratified_covers_distinct_labels() {
        let s = selector(Selection::Stratified, 3, vec![]);
        for i in 0..20 {
            let mut labels: Vec<_> =
                s.select(&format!("te-{i}"), "q").iter().map(|d| d.label.clone()).collect();
            labels.sort();
            assert_eq!(labels, vec!["a", "b", "c"]);
        }
    }

    #[test]
    fn the_item_itself_is_never_a_demonstration() {
        for select in [Selection::Random, Selection::Stratified] {
            let s = selector(select, 29, vec![]);
            for i in 0..30 {
                let input = format!("text {i}");
                let demos = s.select(&format!("tr-{i}"), &input);
                assert!(demos.iter().all(|d| d.input != input));
                assert_eq!(demos.len(), 29);
            }
        }
        let s = selector(Selection::Fixed, 2, vec!["tr-3".into(), "tr-4".into()]);
        let demos = s.select("x", "text 3");
        assert_eq!(demos.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), vec!["tr-4"]);
    }
}
