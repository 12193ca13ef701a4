//! Built-in offline baseline classifier (the `local` backend).
//!
//! A TF-IDF + linear SVM pipeline that mirrors what scikit-learn does with
//! `FeatureUnion([TfidfVectorizer(ngram_range=(1, 2)),
//!                TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5))])`
//! followed by `LinearSVC`:
//!
//! * text is lowercased (Unicode-aware);
//! * word block: tokens are maximal runs of word characters (alphanumeric or
//!   `_`) of at least two characters, like sklearn's `(?u)\b\w\w+\b`, and the
//!   features are token n-grams joined by a single space;
//! * char block: `char_wb` n-grams, i.e. every whitespace-separated word padded
//!   with one space on each side, n-grams taken inside the padded word only;
//! * each block gets TF-IDF weights (smooth idf, optional sublinear tf) and is
//!   L2-normalised on its own, then scaled by its block weight;
//! * one-vs-rest L2-regularised squared-hinge linear SVMs, solved in the dual by
//!   coordinate descent with shrinking (Hsieh et al., ICML 2008; the liblinear
//!   solver behind `LinearSVC`), with the bias as an extra constant feature.
//!
//! Training is deterministic: the vocabulary is numbered in order of first
//! occurrence, every class uses its own fixed-seed permutation stream, and each
//! class is solved independently, so the thread count never changes a bit of
//! the result.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Hyper-parameters of the local TF-IDF + linear SVM classifier.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalModelConfig {
    /// Inclusive range of word n-gram lengths; `(0, 0)` (or min > max) disables the word block.
    pub word_ngrams: (usize, usize),
    /// Inclusive range of `char_wb` n-gram lengths; `(0, 0)` (or min > max) disables the char block.
    pub char_ngrams: (usize, usize),
    /// Shortest token (in chars) kept by the word tokenizer; 2 matches sklearn's default pattern.
    pub min_token_chars: usize,
    /// Use `1 + ln(tf)` instead of the raw term count.
    pub sublinear_tf: bool,
    /// Drop n-grams seen in fewer than this many training texts.
    pub min_df: usize,
    /// Scale of the (unit-norm) word block in the concatenated feature vector.
    pub word_weight: f64,
    /// Scale of the (unit-norm) char block in the concatenated feature vector.
    pub char_weight: f64,
    /// SVM regularisation constant C (larger = less regularisation).
    pub c: f64,
    /// Maximum number of coordinate-descent passes per class.
    pub max_iter: usize,
    /// Stopping tolerance on the projected-gradient spread (liblinear's `eps`).
    pub tol: f64,
    /// Worker threads for training and `predict_batch`; 0 = `available_parallelism()`.
    pub threads: usize,
}

impl Default for LocalModelConfig {
    fn default() -> Self {
        LocalModelConfig {
            word_ngrams: (1, 2),
            char_ngrams: (2, 5),
            min_token_chars: 2,
            sublinear_tf: true,
            min_df: 1,
            word_weight: 1.0,
            char_weight: 1.0,
            c: 0.5,
            max_iter: 1000,
            tol: 0.01,
            threads: 0,
        }
    }
}

/// A trained local classifier: vocabularies, idf weights and one linear model per label.
#[derive(Clone)]
pub struct LocalModel {
    features: FeatureSpace,
    n_labels: usize,
    /// Feature-major weights: row `j` holds the weight of feature `j` for every
    /// label, so scoring a sparse vector touches contiguous memory. The last
    /// row is the bias. Stored as f32 to halve model memory; scores are
    /// accumulated in f64.
    weights: Vec<f32>,
    /// Labels that had at least one training example; the others score -inf.
    trained: Vec<bool>,
    threads: usize,
}

impl LocalModel {
    /// Trains a model. Labels are indices into `0..n_labels`: `labels[i]` is the
    /// label of `texts[i]`.
    ///
    /// Labels without training examples are never predicted (their score is
    /// `-inf`). With no training data at all, every text is predicted as label 0.
    ///
    /// # Panics
    /// If `texts` and `labels` differ in length, a label is `>= n_labels`, or
    /// `config.c` is not a positive finite number (all caller bugs, not data
    /// problems).
    #[must_use]
    pub fn train(
        texts: &[&str],
        labels: &[usize],
        n_labels: usize,
        config: &LocalModelConfig,
    ) -> LocalModel {
        assert_eq!(texts.len(), labels.len(), "texts and labels must have the same length");
        assert!(
            config.c > 0.0 && config.c.is_finite(),
            "SVM C must be positive and finite, got {}",
            config.c
        );
        if let Some(&bad) = labels.iter().find(|&&label| label >= n_labels) {
            panic!("label {bad} out of range for n_labels = {n_labels}");
        }
        let (features, rows) = FeatureSpace::fit_transform(texts, config);
        let mut trained = vec![false; n_labels];
        for &label in labels {
            trained[label] = true;
        }
        let threads = resolve_threads(config.threads);
        let solver = SvmParams { c: config.c, tol: config.tol, max_iter: config.max_iter };
        let dim_with_bias = features.dim() + 1;
        let per_label = train_one_vs_rest(&rows, labels, &trained, dim_with_bias, solver, threads);
        let weights = transpose_weights(per_label, dim_with_bias);
        LocalModel { features, n_labels, weights, trained, threads }
    }

    /// Returns the label with the highest decision score (lowest index on ties).
    #[must_use]
    pub fn predict(&self, text: &str) -> usize {
        argmax(&self.scores(text))
    }

    /// Decision scores `w_k · x + b_k` for every label; untrained labels get `-inf`.
    #[must_use]
    pub fn scores(&self, text: &str) -> Vec<f64> {
        let vector = self.features.transform(text);
        self.scores_of_vector(&vector)
    }

    /// Predicts many texts, splitting the work over the configured threads.
    /// The result is identical to calling [`LocalModel::predict`] on each text.
    #[must_use]
    pub fn predict_batch(&self, texts: &[&str]) -> Vec<usize> {
        // Spawning threads costs more than scoring a handful of short texts.
        const MIN_TEXTS_PER_THREAD: usize = 64;
        let threads = self.threads.min(texts.len() / MIN_TEXTS_PER_THREAD).max(1);
        if threads == 1 {
            return texts.iter().map(|text| self.predict(text)).collect();
        }
        let chunk_len = texts.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = texts
                .chunks(chunk_len)
                .map(|chunk| {
                    scope.spawn(move || {
                        chunk.iter().map(|text| self.predict(text)).collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|handle| match handle.join() {
                    Ok(predictions) => predictions,
                    Err(panic) => std::panic::resume_unwind(panic),
                })
                .collect()
        })
    }

    /// Number of labels the model was trained for.
    #[must_use]
    pub fn n_labels(&self) -> usize {
        self.n_labels
    }

    /// Number of n-gram features (word + char), excluding the bias.
    #[must_use]
    pub fn n_features(&self) -> usize {
        self.features.dim()
    }

    fn scores_of_vector(&self, vector: &[(u32, f32)]) -> Vec<f64> {
        let n_labels = self.n_labels;
        if n_labels == 0 {
            return Vec::new();
        }
        let bias_row = &self.weights[self.features.dim() * n_labels..];
        let mut scores: Vec<f64> = bias_row.iter().map(|&w| f64::from(w)).collect();
        for &(feature, value) in vector {
            let start = feature as usize * n_labels;
            let row = &self.weights[start..start + n_labels];
            for (score, &weight) in scores.iter_mut().zip(row) {
                *score += f64::from(value) * f64::from(weight);
            }
        }
        for (score, &trained) in scores.iter_mut().zip(&self.trained) {
            if !trained {
                *score = f64::NEG_INFINITY;
            }
        }
        scores
    }
}

/// A summary only: the weight matrix has millions of entries.
impl std::fmt::Debug for LocalModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalModel")
            .field("n_labels", &self.n_labels)
            .field("word_features", &self.features.words.len())
            .field("char_features", &self.features.chars.len())
            .field("trained_labels", &self.trained.iter().filter(|&&t| t).count())
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

fn resolve_threads(requested: usize) -> usize {
    if requested > 0 {
        return requested;
    }
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Index of the largest score, first one on ties, 0 for an empty slice.
fn argmax(scores: &[f64]) -> usize {
    let mut best = 0;
    for (index, &score) in scores.iter().enumerate() {
        if score > scores[best] {
            best = index;
        }
    }
    best
}

// ---------------------------------------------------------------------------
// Hashing: a tiny FxHash so vocabulary look-ups are fast and hash-seed free.
// ---------------------------------------------------------------------------

#[derive(Default, Clone, Copy)]
struct FxHasher {
    hash: u64,
}

impl FxHasher {
    const MULTIPLIER: u64 = 0x517c_c1b7_2722_0a95;

    fn add_word(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(Self::MULTIPLIER);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add_word(u64::from_le_bytes(word));
        }
        let tail = chunks.remainder();
        if !tail.is_empty() {
            let mut word = [0u8; 8];
            word[..tail.len()].copy_from_slice(tail);
            self.add_word(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add_word(u64::from(byte));
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

// ---------------------------------------------------------------------------
// N-gram extraction
// ---------------------------------------------------------------------------

/// sklearn's `\w`: Unicode alphanumerics plus underscore.
fn is_word_char(ch: char) -> bool {
    ch.is_alphanumeric() || ch == '_'
}

/// Maximal runs of word characters that are at least `min_chars` long.
fn word_tokens(text: &str, min_chars: usize) -> Vec<&str> {
    let mut tokens = Vec::new();
    let mut run_start: Option<usize> = None;
    let mut run_chars = 0;
    for (pos, ch) in text.char_indices() {
        if is_word_char(ch) {
            if run_start.is_none() {
                run_start = Some(pos);
                run_chars = 0;
            }
            run_chars += 1;
        } else if let Some(start) = run_start.take() {
            if run_chars >= min_chars {
                tokens.push(&text[start..pos]);
            }
        }
    }
    if let Some(start) = run_start {
        if run_chars >= min_chars {
            tokens.push(&text[start..]);
        }
    }
    tokens
}

/// A usable n-gram range: min at least 1, `None` if the block is disabled.
fn normalised_range((min_n, max_n): (usize, usize)) -> Option<(usize, usize)> {
    let min_n = min_n.max(1);
    (max_n >= min_n).then_some((min_n, max_n))
}

/// Reusable buffers so n-gram extraction does not allocate per n-gram.
#[derive(Default)]
struct NgramScratch {
    joined: String,
    padded: String,
    char_bounds: Vec<usize>,
}

/// Calls `emit` with every word n-gram (tokens joined by one space).
fn for_each_word_ngram(
    tokens: &[&str],
    (min_n, max_n): (usize, usize),
    scratch: &mut NgramScratch,
    mut emit: impl FnMut(&str),
) {
    for n in min_n..=max_n.min(tokens.len()) {
        for window in tokens.windows(n) {
            if let [single] = window {
                emit(single);
                continue;
            }
            scratch.joined.clear();
            for (position, token) in window.iter().enumerate() {
                if position > 0 {
                    scratch.joined.push(' ');
                }
                scratch.joined.push_str(token);
            }
            emit(&scratch.joined);
        }
    }
}

/// Calls `emit` with every `char_wb` n-gram, replicating sklearn exactly:
/// a padded word shorter than n is emitted whole, once, and ends that word.
fn for_each_char_wb_ngram(
    text: &str,
    (min_n, max_n): (usize, usize),
    scratch: &mut NgramScratch,
    mut emit: impl FnMut(&str),
) {
    for word in text.split_whitespace() {
        let padded = &mut scratch.padded;
        padded.clear();
        padded.push(' ');
        padded.push_str(word);
        padded.push(' ');
        let bounds = &mut scratch.char_bounds;
        bounds.clear();
        bounds.extend(padded.char_indices().map(|(pos, _)| pos));
        bounds.push(padded.len());
        let n_chars = bounds.len() - 1;
        for n in min_n..=max_n {
            if n >= n_chars {
                emit(padded);
                break;
            }
            for start in 0..=n_chars - n {
                emit(&padded[bounds[start]..bounds[start + n]]);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Vocabulary and TF-IDF
// ---------------------------------------------------------------------------

/// One feature block (word or char): n-gram -> id, plus idf per id.
#[derive(Debug, Clone, Default)]
struct Vocabulary {
    ids: FxHashMap<Box<str>, u32>,
    idf: Vec<f64>,
}

impl Vocabulary {
    fn len(&self) -> usize {
        self.idf.len()
    }

    /// Id of `ngram`, adding it if new (ids follow first occurrence).
    fn intern(&mut self, ngram: &str) -> u32 {
        if let Some(&id) = self.ids.get(ngram) {
            return id;
        }
        let id = self.ids.len() as u32;
        self.ids.insert(ngram.into(), id);
        id
    }

    /// Keeps n-grams with `df >= min_df`, renumbering survivors in their old
    /// order, and computes smooth idf. Returns the old -> new id map.
    fn finish(&mut self, doc_freq: &[u32], n_docs: usize, min_df: usize) -> Vec<Option<u32>> {
        let mut remap = Vec::with_capacity(doc_freq.len());
        let mut idf = Vec::new();
        for &df in doc_freq {
            if (df as usize) < min_df {
                remap.push(None);
                continue;
            }
            remap.push(Some(idf.len() as u32));
            idf.push(((1.0 + n_docs as f64) / (1.0 + f64::from(df))).ln() + 1.0);
        }
        self.ids.retain(|_, id| remap[*id as usize].is_some());
        for id in self.ids.values_mut() {
            if let Some(new_id) = remap[*id as usize] {
                *id = new_id;
            }
        }
        self.ids.shrink_to_fit();
        self.idf = idf;
        remap
    }
}

/// Sorted (id, count) pairs from an unsorted list of ids.
fn count_ids(mut ids: Vec<u32>) -> Vec<(u32, u32)> {
    ids.sort_unstable();
    let mut counts: Vec<(u32, u32)> = Vec::with_capacity(ids.len());
    for id in ids {
        match counts.last_mut() {
            Some((last, count)) if *last == id => *count += 1,
            _ => counts.push((id, 1)),
        }
    }
    counts
}

/// The word + char feature space and how to turn text into a TF-IDF vector.
#[derive(Debug, Clone)]
struct FeatureSpace {
    word_range: Option<(usize, usize)>,
    char_range: Option<(usize, usize)>,
    min_token_chars: usize,
    sublinear_tf: bool,
    word_weight: f64,
    char_weight: f64,
    words: Vocabulary,
    chars: Vocabulary,
}

/// Per-text term counts of both blocks, ids local to each block.
struct TermCounts {
    words: Vec<(u32, u32)>,
    chars: Vec<(u32, u32)>,
}

impl FeatureSpace {
    fn new(config: &LocalModelConfig) -> FeatureSpace {
        FeatureSpace {
            word_range: normalised_range(config.word_ngrams),
            char_range: normalised_range(config.char_ngrams),
            min_token_chars: config.min_token_chars.max(1),
            sublinear_tf: config.sublinear_tf,
            word_weight: config.word_weight,
            char_weight: config.char_weight,
            words: Vocabulary::default(),
            chars: Vocabulary::default(),
        }
    }

    /// Number of n-gram features; the bias lives at index `dim()`.
    fn dim(&self) -> usize {
        self.words.len() + self.chars.len()
    }

    /// Calls the two closures with every word and char n-gram of a lowercased text.
    fn visit_ngrams(
        &self,
        lowered: &str,
        scratch: &mut NgramScratch,
        mut on_word: impl FnMut(&str),
        mut on_char: impl FnMut(&str),
    ) {
        if let Some(range) = self.word_range {
            let tokens = word_tokens(lowered, self.min_token_chars);
            for_each_word_ngram(&tokens, range, scratch, &mut on_word);
        }
        if let Some(range) = self.char_range {
            for_each_char_wb_ngram(lowered, range, scratch, &mut on_char);
        }
    }

    /// Builds the vocabularies from the training texts and returns their
    /// TF-IDF rows (with the bias feature appended).
    fn fit_transform(texts: &[&str], config: &LocalModelConfig) -> (FeatureSpace, SparseRows) {
        let mut space = FeatureSpace::new(config);
        let mut scratch = NgramScratch::default();
        let mut words = Vocabulary::default();
        let mut chars = Vocabulary::default();
        let mut docs = Vec::with_capacity(texts.len());
        for text in texts {
            let lowered = text.to_lowercase();
            let mut word_ids = Vec::new();
            let mut char_ids = Vec::new();
            space.visit_ngrams(
                &lowered,
                &mut scratch,
                |ngram| word_ids.push(words.intern(ngram)),
                |ngram| char_ids.push(chars.intern(ngram)),
            );
            docs.push(TermCounts { words: count_ids(word_ids), chars: count_ids(char_ids) });
        }
        let min_df = config.min_df.max(1);
        let word_remap = words.finish(
            &doc_freq(docs.iter().map(|d| &d.words), words.ids.len()),
            texts.len(),
            min_df,
        );
        let char_remap = chars.finish(
            &doc_freq(docs.iter().map(|d| &d.chars), chars.ids.len()),
            texts.len(),
            min_df,
        );
        space.words = words;
        space.chars = chars;
        let mut rows = SparseRows::default();
        for doc in docs {
            let counts = TermCounts {
                words: remap_counts(doc.words, &word_remap),
                chars: remap_counts(doc.chars, &char_remap),
            };
            let mut vector = space.weigh(&counts);
            vector.push((space.dim() as u32, 1.0));
            rows.push(&vector);
        }
        (space, rows)
    }

    /// TF-IDF vector of an unseen text (unknown n-grams ignored, no bias).
    fn transform(&self, text: &str) -> Vec<(u32, f32)> {
        let lowered = text.to_lowercase();
        let mut scratch = NgramScratch::default();
        let mut word_ids = Vec::new();
        let mut char_ids = Vec::new();
        self.visit_ngrams(
            &lowered,
            &mut scratch,
            |ngram| word_ids.extend(self.words.ids.get(ngram).copied()),
            |ngram| char_ids.extend(self.chars.ids.get(ngram).copied()),
        );
        self.weigh(&TermCounts { words: count_ids(word_ids), chars: count_ids(char_ids) })
    }

    /// Concatenates the two blocks, each TF-IDF weighted, unit-normalised and scaled.
    fn weigh(&self, counts: &TermCounts) -> Vec<(u32, f32)> {
        let mut vector = Vec::with_capacity(counts.words.len() + counts.chars.len() + 1);
        self.append_block(&mut vector, &counts.words, &self.words.idf, 0, self.word_weight);
        let char_offset = self.words.len() as u32;
        self.append_block(
            &mut vector,
            &counts.chars,
            &self.chars.idf,
            char_offset,
            self.char_weight,
        );
        vector
    }

    fn append_block(
        &self,
        vector: &mut Vec<(u32, f32)>,
        counts: &[(u32, u32)],
        idf: &[f64],
        offset: u32,
        block_weight: f64,
    ) {
        let tf = |count: u32| {
            if self.sublinear_tf {
                1.0 + f64::from(count).ln()
            } else {
                f64::from(count)
            }
        };
        let values: Vec<f64> =
            counts.iter().map(|&(id, count)| tf(count) * idf[id as usize]).collect();
        let norm = values.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm == 0.0 {
            return;
        }
        let scale = block_weight / norm;
        for (&(id, _), value) in counts.iter().zip(values) {
            vector.push((id + offset, (value * scale) as f32));
        }
    }
}

/// Document frequency per id of one block.
fn doc_freq<'a>(docs: impl Iterator<Item = &'a Vec<(u32, u32)>>, n_ids: usize) -> Vec<u32> {
    let mut df = vec![0u32; n_ids];
    for doc in docs {
        for &(id, _) in doc {
            df[id as usize] += 1;
        }
    }
    df
}

/// Applies a min_df renumbering; order is preserved because the remap is monotonic.
fn remap_counts(counts: Vec<(u32, u32)>, remap: &[Option<u32>]) -> Vec<(u32, u32)> {
    counts
        .into_iter()
        .filter_map(|(id, count)| remap[id as usize].map(|new_id| (new_id, count)))
        .collect()
}

// ---------------------------------------------------------------------------
// Sparse rows (CSR)
// ---------------------------------------------------------------------------

/// Training matrix in compressed sparse row form; f32 values halve memory traffic.
#[derive(Debug, Default)]
struct SparseRows {
    offsets: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f32>,
}

impl SparseRows {
    fn push(&mut self, vector: &[(u32, f32)]) {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        for &(index, value) in vector {
            self.indices.push(index);
            self.values.push(value);
        }
        self.offsets.push(self.indices.len());
    }

    fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let range = self.offsets[i]..self.offsets[i + 1];
        (&self.indices[range.clone()], &self.values[range])
    }

    fn squared_norm(&self, i: usize) -> f64 {
        let (_, values) = self.row(i);
        values.iter().map(|&v| f64::from(v) * f64::from(v)).sum()
    }
}

// ---------------------------------------------------------------------------
// Linear SVM: dual coordinate descent (liblinear's L2R_L2LOSS_SVC_DUAL)
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct SvmParams {
    c: f64,
    tol: f64,
    max_iter: usize,
}

/// splitmix64: enough randomness for shuffling, fully reproducible.
struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform-enough integer in `0..bound` (bound > 0); modulo bias is irrelevant here.
    fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }
}

/// Trains every label with examples, spreading labels over `threads` workers.
/// Untrained labels get an all-zero weight vector.
fn train_one_vs_rest(
    rows: &SparseRows,
    labels: &[usize],
    trained: &[bool],
    dim: usize,
    params: SvmParams,
    threads: usize,
) -> Vec<Vec<f64>> {
    let squared_norms: Vec<f64> = (0..rows.len()).map(|i| rows.squared_norm(i)).collect();
    let next_label = AtomicUsize::new(0);
    let n_labels = trained.len();
    let worker = || {
        let mut solved = Vec::new();
        loop {
            let label = next_label.fetch_add(1, Ordering::Relaxed);
            if label >= n_labels {
                return solved;
            }
            if !trained[label] {
                solved.push((label, vec![0.0; dim]));
                continue;
            }
            let targets: Vec<f64> =
                labels.iter().map(|&l| if l == label { 1.0 } else { -1.0 }).collect();
            let seed = 0x5eed_0000_0000_0000 ^ label as u64;
            let weights = solve_binary_svm(rows, &squared_norms, &targets, dim, params, seed);
            solved.push((label, weights));
        }
    };
    let threads = threads.clamp(1, n_labels.max(1));
    let mut per_label = vec![Vec::new(); n_labels];
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads).map(|_| scope.spawn(worker)).collect();
        for handle in handles {
            let solved = match handle.join() {
                Ok(solved) => solved,
                Err(panic) => std::panic::resume_unwind(panic),
            };
            for (label, weights) in solved {
                per_label[label] = weights;
            }
        }
    });
    per_label
}

/// Dual coordinate descent with shrinking for
/// `min_w 1/2 |w|^2 + C sum_i max(0, 1 - y_i w.x_i)^2`
/// (Hsieh et al. 2008, Algorithm 3; the same updates as liblinear).
fn solve_binary_svm(
    rows: &SparseRows,
    squared_norms: &[f64],
    targets: &[f64],
    dim: usize,
    params: SvmParams,
    seed: u64,
) -> Vec<f64> {
    let n = rows.len();
    // Squared hinge = hinge with an extra diagonal term and no upper bound on alpha.
    let diag = 0.5 / params.c;
    let curvature: Vec<f64> = squared_norms.iter().map(|q| q + diag).collect();
    let mut weights = vec![0.0f64; dim];
    let mut alpha = vec![0.0f64; n];
    let mut order: Vec<usize> = (0..n).collect();
    let mut active = n;
    let mut rng = SplitMix64::new(seed);
    // No upper bound on alpha for the squared hinge, so only the max side of
    // liblinear's shrinking thresholds is needed.
    let mut max_gradient_old = f64::INFINITY;

    for _ in 0..params.max_iter {
        for i in 0..active {
            let j = i + rng.below(active - i);
            order.swap(i, j);
        }
        let mut max_gradient = f64::NEG_INFINITY;
        let mut min_gradient = f64::INFINITY;
        let mut s = 0;
        while s < active {
            let i = order[s];
            let (indices, values) = rows.row(i);
            let y = targets[i];
            let margin: f64 =
                indices.iter().zip(values).map(|(&j, &v)| weights[j as usize] * f64::from(v)).sum();
            let gradient = y * margin - 1.0 + diag * alpha[i];
            let mut projected = gradient;
            if alpha[i] == 0.0 {
                // At the bound and pushing outwards harder than anything last
                // pass: very likely to stay at zero, so stop visiting it.
                if gradient > max_gradient_old {
                    active -= 1;
                    order.swap(s, active);
                    continue;
                }
                projected = gradient.min(0.0);
            }
            max_gradient = max_gradient.max(projected);
            min_gradient = min_gradient.min(projected);
            if projected.abs() > 1e-12 {
                let old = alpha[i];
                alpha[i] = (old - gradient / curvature[i]).max(0.0);
                let step = (alpha[i] - old) * y;
                for (&j, &v) in indices.iter().zip(values) {
                    weights[j as usize] += step * f64::from(v);
                }
            }
            s += 1;
        }
        if max_gradient - min_gradient <= params.tol {
            if active == n {
                break;
            }
            // Converged on the shrunk problem: re-check every example once more.
            active = n;
            max_gradient_old = f64::INFINITY;
            continue;
        }
        max_gradient_old = if max_gradient <= 0.0 { f64::INFINITY } else { max_gradient };
    }
    weights
}

/// Turns per-label weight vectors (each `dim_with_bias` long, consumed to keep
/// peak memory down) into the feature-major layout used for scoring.
fn transpose_weights(per_label: Vec<Vec<f64>>, dim_with_bias: usize) -> Vec<f32> {
    let n_labels = per_label.len();
    let mut transposed = vec![0.0f32; dim_with_bias * n_labels];
    for (label, weights) in per_label.into_iter().enumerate() {
        for (feature, weight) in weights.into_iter().enumerate().take(dim_with_bias) {
            transposed[feature * n_labels + label] = weight as f32;
        }
    }
    transposed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word_ngrams_of(text: &str, range: (usize, usize), min_chars: usize) -> Vec<String> {
        let lowered = text.to_lowercase();
        let tokens = word_tokens(&lowered, min_chars);
        let mut found = Vec::new();
        for_each_word_ngram(&tokens, range, &mut NgramScratch::default(), |g| {
            found.push(g.to_string())
        });
        found
    }

    fn char_ngrams_of(text: &str, range: (usize, usize)) -> Vec<String> {
        let mut found = Vec::new();
        for_each_char_wb_ngram(text, range, &mut NgramScratch::default(), |g| {
            found.push(g.to_string())
        });
        found
    }

    fn train_default(texts: &[&str], labels: &[usize], n_labels: usize) -> LocalModel {
        LocalModel::train(texts, labels, n_labels, &LocalModelConfig::default())
    }

    /// Three topics with disjoint vocabularies, `per_topic` phrasings each.
    fn topic_dataset(per_topic: usize) -> (Vec<String>, Vec<usize>) {
        let topics: [&[&str]; 3] = [
            &["card", "arrived", "delivery", "post", "mail"],
            &["exchange", "rate", "currency", "euro", "dollar"],
            &["password", "reset", "login", "locked", "pin"],
        ];
        let mut texts = Vec::new();
        let mut labels = Vec::new();
        for (label, words) in topics.iter().enumerate() {
            for i in 0..per_topic {
                let a = words[i % words.len()];
                let b = words[(i / words.len() + i + 1) % words.len()];
                texts.push(format!("my question is about {a} and {b} number {i}"));
                labels.push(label);
            }
        }
        (texts, labels)
    }

    #[test]
    fn word_tokens_follow_sklearn_pattern() {
        assert_eq!(
            word_ngrams_of("Hello, World! I am ok_2 x", (1, 1), 2),
            ["hello", "world", "am", "ok_2"]
        );
        assert_eq!(word_ngrams_of("I am", (1, 1), 1), ["i", "am"]);
    }

    #[test]
    fn word_unigrams_and_bigrams() {
        assert_eq!(
            word_ngrams_of("Hello, world! I am ok", (1, 2), 2),
            ["hello", "world", "am", "ok", "hello world", "world am", "am ok"]
        );
        // Bigrams of a one-token text simply do not exist.
        assert_eq!(word_ngrams_of("hello", (1, 2), 2), ["hello"]);
    }

    #[test]
    fn char_wb_ngrams_match_sklearn() {
        // sklearn: CountVectorizer(analyzer="char_wb", ngram_range=(2, 5)) on "ab c".
        assert_eq!(
            char_ngrams_of("ab c", (2, 5)),
            [" a", "ab", "b ", " ab", "ab ", " ab ", " c", "c ", " c "]
        );
        // Punctuation stays inside the padded word.
        assert_eq!(char_ngrams_of("a?", (3, 3)), [" a?", "a? "]);
    }

    #[test]
    fn char_wb_ngrams_respect_multibyte_boundaries() {
        assert_eq!(char_ngrams_of("é😀", (2, 2)), [" é", "é😀", "😀 "]);
        assert_eq!(char_ngrams_of("日本", (4, 4)), [" 日本 "]);
    }

    #[test]
    fn transform_is_unit_norm_per_block_and_ignores_unknown_ngrams() {
        let model = train_default(&["card arrived", "exchange rate"], &[0, 1], 2);
        let vector = model.features.transform("CARD arrived zzzz");
        let n_words = model.features.words.len() as u32;
        let block_norm = |in_block: &dyn Fn(u32) -> bool| {
            vector
                .iter()
                .filter(|(id, _)| in_block(*id))
                .map(|(_, v)| f64::from(*v).powi(2))
                .sum::<f64>()
        };
        assert!((block_norm(&|id| id < n_words) - 1.0).abs() < 1e-6);
        assert!((block_norm(&|id| id >= n_words) - 1.0).abs() < 1e-6);
        assert!(model.features.transform("zzzz").is_empty());
    }

    #[test]
    fn min_df_drops_rare_ngrams() {
        let config =
            LocalModelConfig { min_df: 2, char_ngrams: (0, 0), ..LocalModelConfig::default() };
        let model = LocalModel::train(&["alpha beta", "alpha gamma"], &[0, 1], 2, &config);
        assert_eq!(model.n_features(), 1);
        assert_eq!(model.features.words.ids.get("alpha"), Some(&0));
    }

    #[test]
    fn learns_separable_topics_perfectly() {
        let (texts, labels) = topic_dataset(20);
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let model = train_default(&texts, &labels, 3);
        assert_eq!(model.predict_batch(&texts), labels);
        assert_eq!(model.predict("When will my card be delivered by mail?"), 0);
        assert_eq!(model.predict("What is the euro to dollar exchange rate"), 1);
        assert_eq!(model.predict("I forgot my PIN and I am locked out"), 2);
    }

    #[test]
    fn training_is_deterministic_across_runs_and_thread_counts() {
        let (texts, labels) = topic_dataset(30);
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let probe = ["card exchange", "", "locked euro post", "unrelated words"];
        let bits_of = |threads: usize| {
            let config = LocalModelConfig { threads, ..LocalModelConfig::default() };
            let model = LocalModel::train(&texts, &labels, 3, &config);
            let scores: Vec<u64> =
                probe.iter().flat_map(|t| model.scores(t)).map(f64::to_bits).collect();
            (scores, model.weights.iter().map(|w| w.to_bits()).collect::<Vec<_>>())
        };
        let reference = bits_of(1);
        assert_eq!(bits_of(1), reference);
        assert_eq!(bits_of(2), reference);
        assert_eq!(bits_of(5), reference);
    }

    #[test]
    fn predict_batch_matches_predict() {
        let (texts, labels) = topic_dataset(100);
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let config = LocalModelConfig { threads: 3, ..LocalModelConfig::default() };
        let model = LocalModel::train(&texts[..30], &labels[..30], 3, &config);
        let one_by_one: Vec<usize> = texts.iter().map(|t| model.predict(t)).collect();
        assert_eq!(model.predict_batch(&texts), one_by_one);
        assert!(model.predict_batch(&[]).is_empty());
    }

    #[test]
    fn odd_texts_do_not_panic() {
        let texts = [
            "",
            "?!... ---",
            "   \t\n ",
            "😀😀 🎉",
            "日本語のテキスト",
            "e\u{301}te\u{301} cafe\u{301}",
            "İSTANBUL ΣΊΣΥΦΟΣ",
            "normal text about cards",
        ];
        let labels = [0, 1, 2, 0, 1, 2, 0, 1];
        let model = train_default(&texts, &labels, 3);
        for text in texts.iter().chain(&["", "?", "🤷", "\u{301}", "ǅ"]) {
            let scores = model.scores(text);
            assert_eq!(scores.len(), 3);
            assert!(scores.iter().all(|s| s.is_finite()));
            assert!(model.predict(text) < 3);
        }
    }

    #[test]
    fn labels_without_examples_never_win() {
        let model = train_default(&["card arrived", "exchange rate", "single one"], &[0, 2, 4], 6);
        for text in ["card", "rate", "single", "", "nothing known"] {
            let scores = model.scores(text);
            for missing in [1, 3, 5] {
                assert_eq!(scores[missing], f64::NEG_INFINITY);
            }
            assert!([0, 2, 4].contains(&model.predict(text)));
        }
    }

    #[test]
    fn tiny_training_sets_work() {
        let one = train_default(&["only example"], &[1], 2);
        assert_eq!(one.predict("only example"), 1);
        assert_eq!(one.predict(""), 1);

        let empty_text = train_default(&[""], &[0], 1);
        assert_eq!(empty_text.predict("anything"), 0);

        let nothing = train_default(&[], &[], 3);
        assert_eq!(nothing.predict("anything"), 0);
        assert_eq!(nothing.scores("anything"), [f64::NEG_INFINITY; 3]);

        let no_labels = train_default(&[], &[], 0);
        assert_eq!(no_labels.predict("anything"), 0);
        assert!(no_labels.scores("anything").is_empty());
    }

    #[test]
    fn disabled_blocks_still_work() {
        let (texts, labels) = topic_dataset(10);
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        for (word_ngrams, char_ngrams) in
            [((0, 0), (2, 4)), ((1, 2), (0, 0)), ((0, 0), (0, 0)), ((2, 1), (3, 3))]
        {
            let config =
                LocalModelConfig { word_ngrams, char_ngrams, ..LocalModelConfig::default() };
            let model = LocalModel::train(&texts, &labels, 3, &config);
            assert!(model.predict("card mail") < 3);
        }
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn out_of_range_label_is_rejected() {
        train_default(&["a text"], &[3], 2);
    }
}
