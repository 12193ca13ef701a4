//! Train–test leakage: test items whose text also appears in the training data (or in a
//! fine-tuning file), where a few-shot demonstration, the local baseline or a fine-tuned model
//! would have seen the answer.
//!
//! Two kinds of match, both on text normalised by [`crate::text::normalize`] (case, spacing and
//! punctuation folded):
//! - **exact**: the normalised texts are equal;
//! - **near-duplicate**: the sets of character [`SHINGLE_CHARS`]-grams of the normalised texts
//!   have a Jaccard similarity of at least [`NEAR_DUPLICATE_JACCARD`] (a lightly edited copy: a
//!   word changed, added or dropped in a sentence of ordinary length).
//!
//! The near-duplicate search is exact, not sampled: prefix filtering (Chaudhuri et al. 2006;
//! Bayardo et al. 2007). Each set's shingles are ordered rarest first; two sets with Jaccard ≥ t
//! must share a shingle among the first `|s| − ⌈t·|s|⌉ + 1` of each, so only those prefixes are
//! indexed and probed, and the few candidates they give are verified with the exact Jaccard.

use std::collections::HashMap;

use super::{Item, Suite};
use crate::text::normalize;

/// Character n-gram length of the near-duplicate check.
pub const SHINGLE_CHARS: usize = 5;
/// The Jaccard similarity of character 5-gram sets at or above which two texts are
/// near-duplicates.
pub const NEAR_DUPLICATE_JACCARD: f64 = 0.8;

/// How a test item matches a reference text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Match {
    /// Equal after normalisation.
    Exact,
    /// Character 5-gram Jaccard similarity at or above the threshold.
    Near { jaccard: f64 },
}

/// A test item whose text matches a reference (train or fine-tuning) text.
#[derive(Debug, Clone, PartialEq)]
pub struct Leak {
    pub test_id: String,
    pub test_line: u64,
    /// The matching reference: a train item's id, or a fine-tuning file's line id.
    pub train_id: String,
    pub train_line: u64,
    pub kind: Match,
}

/// One text to compare: an id, its line, and its normalised text.
#[derive(Debug, Clone)]
pub struct Doc {
    pub id: String,
    pub line: u64,
    pub text: String,
}

impl Doc {
    pub fn new(id: impl Into<String>, line: u64, text: &str) -> Doc {
        Doc { id: id.into(), line, text: normalize(text) }
    }

    /// A suite item, its text being every text column (ids and groups are not text).
    pub fn of_item(item: &Item) -> Doc {
        Doc { id: item.id.clone(), line: item.line, text: normalized_text(item) }
    }
}

/// Test items that match a train item, exactly or as near-duplicates; at most one leak per test
/// item (an exact match if there is one, else the most similar).
pub fn find(suite: &Suite) -> Vec<Leak> {
    let Some(train) = &suite.train else { return Vec::new() };
    let tests: Vec<Doc> = suite.test.items.iter().map(Doc::of_item).collect();
    let refs: Vec<Doc> = train.items.iter().map(Doc::of_item).collect();
    find_docs(&tests, &refs)
}

/// Each test doc that matches a reference doc: an exact match first, else the most similar
/// near-duplicate (ties by reference order). Empty texts match nothing.
pub fn find_docs(tests: &[Doc], refs: &[Doc]) -> Vec<Leak> {
    let mut exact: HashMap<&str, &Doc> = HashMap::with_capacity(refs.len());
    for r in refs {
        if !r.text.is_empty() {
            exact.entry(r.text.as_str()).or_insert(r);
        }
    }
    let index = NearIndex::new(refs.iter().map(|r| r.text.as_str()));
    let leak = |t: &Doc, r: &Doc, kind| Leak {
        test_id: t.id.clone(),
        test_line: t.line,
        train_id: r.id.clone(),
        train_line: r.line,
        kind,
    };
    tests
        .iter()
        .filter(|t| !t.text.is_empty())
        .filter_map(|t| {
            if let Some(r) = exact.get(t.text.as_str()) {
                return Some(leak(t, r, Match::Exact));
            }
            let (i, jaccard) = index.most_similar(&t.text)?;
            Some(leak(t, &refs[i], Match::Near { jaccard }))
        })
        .collect()
}

/// The sorted, deduplicated hashes of a normalised text's character 5-grams (the whole text
/// when it is shorter).
pub fn shingles(normalized: &str) -> Vec<u64> {
    let chars: Vec<char> = normalized.chars().collect();
    let mut out: Vec<u64> = if chars.len() <= SHINGLE_CHARS {
        if chars.is_empty() {
            Vec::new()
        } else {
            vec![hash_chars(&chars)]
        }
    } else {
        chars.windows(SHINGLE_CHARS).map(hash_chars).collect()
    };
    out.sort_unstable();
    out.dedup();
    out
}

fn hash_chars(chars: &[char]) -> u64 {
    // FNV-1a over the chars, then SplitMix64 mixing: stable across machines and releases.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &c in chars {
        h ^= c as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The Jaccard similarity of two sorted shingle sets (0 when both are empty).
pub fn jaccard(a: &[u64], b: &[u64]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 0.0;
    }
    let (mut i, mut j, mut both) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                both += 1;
                i += 1;
                j += 1;
            }
        }
    }
    both as f64 / (a.len() + b.len() - both) as f64
}

/// Whether two normalised texts are near-duplicates (or equal).
pub fn near_duplicates(a: &str, b: &str) -> bool {
    a == b || jaccard(&shingles(a), &shingles(b)) >= NEAR_DUPLICATE_JACCARD
}

/// How many of a set's rarest shingles must be indexed so that any set with Jaccard ≥ the
/// threshold shares one of them.
fn prefix_len(size: usize) -> usize {
    let need = (NEAR_DUPLICATE_JACCARD * size as f64 - 1e-9).ceil() as usize;
    (size + 1).saturating_sub(need).min(size)
}

/// Reference texts indexed for near-duplicate queries (prefix filtering over shingles).
pub struct NearIndex {
    /// Each reference's shingles, sorted by hash (for the exact Jaccard).
    sets: Vec<Vec<u64>>,
    /// Shingle → how many references have it; rarer shingles come first in a prefix.
    df: HashMap<u64, u32>,
    /// Prefix shingle → the references whose prefix holds it.
    postings: HashMap<u64, Vec<u32>>,
}

impl NearIndex {
    pub fn new<'a>(texts: impl Iterator<Item = &'a str>) -> NearIndex {
        let sets: Vec<Vec<u64>> = texts.map(shingles).collect();
        let mut df: HashMap<u64, u32> = HashMap::new();
        for s in &sets {
            for &h in s {
                *df.entry(h).or_default() += 1;
            }
        }
        let mut index = NearIndex { sets, df, postings: HashMap::new() };
        for i in 0..index.sets.len() {
            for h in index.prefix(&index.sets[i]) {
                index.postings.entry(h).or_default().push(i as u32);
            }
        }
        index
    }

    /// The rarest `prefix_len` shingles of a set (ties by hash).
    fn prefix(&self, set: &[u64]) -> Vec<u64> {
        let mut ordered: Vec<(u32, u64)> =
            set.iter().map(|h| (self.df.get(h).copied().unwrap_or(0), *h)).collect();
        ordered.sort_unstable();
        ordered.truncate(prefix_len(set.len()));
        ordered.into_iter().map(|(_, h)| h).collect()
    }

    /// The reference most similar to `normalized` with Jaccard ≥ the threshold, and its
    /// similarity; ties go to the earliest reference.
    pub fn most_similar(&self, normalized: &str) -> Option<(usize, f64)> {
        self.similar(normalized).into_iter().next()
    }

    /// Every reference with Jaccard ≥ the threshold, most similar first (ties by index).
    pub fn similar(&self, normalized: &str) -> Vec<(usize, f64)> {
        let query = shingles(normalized);
        if query.is_empty() {
            return Vec::new();
        }
        let mut candidates: Vec<u32> = self
            .prefix(&query)
            .iter()
            .filter_map(|h| self.postings.get(h))
            .flatten()
            .copied()
            .collect();
        candidates.sort_unstable();
        candidates.dedup();
        let (lo, hi) = (
            NEAR_DUPLICATE_JACCARD * query.len() as f64,
            query.len() as f64 / NEAR_DUPLICATE_JACCARD,
        );
        let mut found: Vec<(usize, f64)> = candidates
            .into_iter()
            .map(|i| i as usize)
            .filter(|&i| {
                let n = self.sets[i].len() as f64;
                n >= lo - 1e-9 && n <= hi + 1e-9
            })
            .map(|i| (i, jaccard(&query, &self.sets[i])))
            .filter(|&(_, j)| j >= NEAR_DUPLICATE_JACCARD)
            .collect();
        found.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        found
    }
}

/// An item's text: its text columns (or lists of text lines), normalised and joined.
pub fn normalized_text(item: &Item) -> String {
    let mut words = Vec::new();
    for name in item.fields.keys() {
        if name == "id" || name == "group" {
            continue;
        }
        // Text, or lists of text lines (receipts given as OCR lines).
        let texts: Vec<&str> = match item.fields.get(name) {
            Some(serde_json::Value::String(text)) => vec![text],
            Some(serde_json::Value::Array(lines)) => {
                lines.iter().filter_map(|l| l.as_str()).collect()
            }
            _ => Vec::new(),
        };
        words.extend(texts.into_iter().map(normalize).filter(|w| !w.is_empty()));
    }
    words.join(" ")
}

/// One sentence naming the leaks (at most `limit` ids, then how many more), for warnings.
pub fn describe(leaks: &[Leak], limit: usize) -> String {
    let exact = leaks.iter().filter(|l| l.kind == Match::Exact).count();
    let mut ids: Vec<String> = leaks
        .iter()
        .take(limit)
        .map(|l| match l.kind {
            Match::Exact => format!("{} (= {})", l.test_id, l.train_id),
            Match::Near { jaccard } => format!("{} (~ {}, {jaccard:.2})", l.test_id, l.train_id),
        })
        .collect();
    if leaks.len() > limit {
        ids.push(format!("and {} more", leaks.len() - limit));
    }
    format!(
        "{} exactly after normalisation, {} as near-duplicates (character {SHINGLE_CHARS}-gram Jaccard ≥ {NEAR_DUPLICATE_JACCARD}): {}",
        exact,
        leaks.len() - exact,
        ids.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::load_str;

    #[test]
    fn finds_texts_that_differ_only_in_case_spacing_and_punctuation() {
        let yaml = r#"schema_version: 1
name: leak
task: { kind: classification, labels: [a, b], instructions: "x", input: "{{ text }}" }
data:
  test:
    - { id: t1, text: "Where is my REFUND?!", label: a }
    - { id: t2, text: "Something new", label: b }
  train:
    - { id: r1, text: "where is my refund", label: a }
    - { id: r2, text: "Something else", label: b }
backends: [{ id: base, provider: local }]
"#;
        let suite = load_str(std::path::Path::new("leak.yaml"), yaml).unwrap();
        let leaks = find(&suite);
        assert_eq!(leaks.len(), 1);
        assert_eq!((leaks[0].test_id.as_str(), leaks[0].train_id.as_str()), ("t1", "r1"));
        assert_eq!(leaks[0].kind, Match::Exact);
    }

    /// Distinct sentences from a small vocabulary, like a real clean split.
    fn sentences(n: usize, seed: u64) -> Vec<String> {
        let words = [
            "card", "refund", "account", "transfer", "pending", "declined", "my", "the", "why",
            "is", "was", "how", "do", "i", "cash", "atm", "fee", "charged", "twice", "top", "up",
            "failed", "exchange", "rate", "pin", "blocked", "new", "lost", "stolen", "verify",
        ];
        let mut state = seed;
        (0..n)
            .map(|_| {
                let len = 6 + (state % 8) as usize;
                (0..len)
                    .map(|_| {
                        state = state
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        words[(state >> 33) as usize % words.len()]
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    #[test]
    fn planted_exact_recased_and_edited_duplicates_are_found_and_a_clean_split_has_none() {
        let train_text = sentences(2000, 1);
        let mut test_text = sentences(300, 2);
        let refs: Vec<Doc> =
            train_text.iter().enumerate().map(|(i, t)| Doc::new(format!("r{i}"), 0, t)).collect();
        let docs = |texts: &[String]| -> Vec<Doc> {
            texts.iter().enumerate().map(|(i, t)| Doc::new(format!("t{i}"), 0, t)).collect()
        };
        // Clean: random sentences that happen to coincide are removed first.
        test_text
            .retain(|t| !train_text.iter().any(|r| near_duplicates(&normalize(r), &normalize(t))));
        let n = test_text.len();
        assert!(n > 250);
        assert!(find_docs(&docs(&test_text), &refs).is_empty(), "a clean split has no leak");
        let long = "I was charged twice for the same card payment at the supermarket yesterday";
        let mut refs = refs;
        refs.push(Doc::new("planted", 0, long));
        test_text.push(long.to_string());
        test_text.push(long.to_uppercase().replace(' ', "  ") + "!!");
        test_text.push(long.replace("yesterday", "yesterday evening"));
        test_text.push(long.replace("supermarket", "supermarkt"));
        let leaks = find_docs(&docs(&test_text), &refs);
        let ids: Vec<&str> = leaks.iter().map(|l| l.test_id.as_str()).collect();
        let planted: Vec<String> = (n..n + 4).map(|i| format!("t{i}")).collect();
        assert_eq!(ids, planted.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(leaks.iter().all(|l| l.train_id == "planted"));
        assert_eq!((leaks[0].kind, leaks[1].kind), (Match::Exact, Match::Exact));
        assert!(matches!(leaks[2].kind, Match::Near { jaccard } if jaccard >= 0.8));
        assert!(matches!(leaks[3].kind, Match::Near { jaccard } if jaccard >= 0.8));
    }

    #[test]
    fn the_index_misses_nothing_a_brute_force_search_finds() {
        let refs_text = sentences(400, 5);
        let mut tests_text = sentences(100, 6);
        // Edits of references at varying distances.
        for (i, r) in refs_text.iter().take(60).enumerate() {
            let words: Vec<&str> = r.split(' ').collect();
            let cut = i % words.len().max(1);
            tests_text.push(
                words
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != cut)
                    .map(|(_, w)| *w)
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
        let norm: Vec<String> = refs_text.iter().map(|t| normalize(t)).collect();
        let index = NearIndex::new(norm.iter().map(String::as_str));
        for t in &tests_text {
            let t = normalize(t);
            let brute: Vec<usize> = norm
                .iter()
                .enumerate()
                .filter(|(_, r)| jaccard(&shingles(r), &shingles(&t)) >= NEAR_DUPLICATE_JACCARD)
                .map(|(i, _)| i)
                .collect();
            let mut found: Vec<usize> = index.similar(&t).into_iter().map(|(i, _)| i).collect();
            found.sort_unstable();
            assert_eq!(found, brute, "{t}");
        }
    }
}
