//! TF-IDF vectors for `select: similar`: the train items nearest to a test item by cosine.
//!
//! Words are maximal runs of alphanumeric characters, lowercased; features are word unigrams and
//! bigrams with sublinear term frequency (1 + ln tf) and smooth inverse document frequency
//! (ln((1 + n) / (1 + df)) + 1) over the pool, each vector L2-normalised. (The local
//! classifier's vectoriser is fused with its SVM training and hashed feature space; this is the
//! same weighting on the word block, small enough to own.)

use std::collections::HashMap;

/// A sparse unit vector: (feature, weight), sorted by feature.
pub type Vector = Vec<(u32, f32)>;

pub struct TfIdf {
    vocabulary: HashMap<String, u32>,
    idf: Vec<f32>,
    /// The pool's vectors.
    docs: Vec<Vector>,
    /// Feature → (doc, weight) for every pool doc that has it.
    postings: Vec<Vec<(u32, f32)>>,
}

fn terms(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let words: Vec<&str> =
        lower.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let mut out: Vec<String> = words.iter().map(|w| w.to_string()).collect();
    out.extend(words.windows(2).map(|p| format!("{} {}", p[0], p[1])));
    out
}

impl TfIdf {
    /// Fits the vocabulary and weights on the pool and indexes it.
    pub fn fit<'a>(pool: impl Iterator<Item = &'a str>) -> TfIdf {
        let mut vocabulary: HashMap<String, u32> = HashMap::new();
        let mut counts: Vec<Vec<(u32, u32)>> = Vec::new();
        let mut df: Vec<u32> = Vec::new();
        for text in pool {
            let mut tf: HashMap<u32, u32> = HashMap::new();
            for t in terms(text) {
                let next = vocabulary.len() as u32;
                let id = *vocabulary.entry(t).or_insert(next);
                if id as usize == df.len() {
                    df.push(0);
                }
                *tf.entry(id).or_default() += 1;
            }
            for &id in tf.keys() {
                df[id as usize] += 1;
            }
            let mut tf: Vec<(u32, u32)> = tf.into_iter().collect();
            tf.sort_unstable();
            counts.push(tf);
        }
        let n = counts.len() as f32;
        let idf: Vec<f32> = df.iter().map(|&d| ((1.0 + n) / (1.0 + d as f32)).ln() + 1.0).collect();
        let mut model = TfIdf { vocabulary, idf, docs: Vec::new(), postings: Vec::new() };
        model.postings = vec![Vec::new(); model.idf.len()];
        for (i, tf) in counts.into_iter().enumerate() {
            let v = model.weigh(tf);
            for &(f, w) in &v {
                model.postings[f as usize].push((i as u32, w));
            }
            model.docs.push(v);
        }
        model
    }

    fn weigh(&self, tf: Vec<(u32, u32)>) -> Vector {
        let mut v: Vector = tf
            .into_iter()
            .map(|(f, c)| (f, (1.0 + (c as f32).ln()) * self.idf[f as usize]))
            .collect();
        let norm = v.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|(_, w)| *w /= norm);
        }
        v
    }

    /// The vector of a text; words the pool never had are left out.
    pub fn vector(&self, text: &str) -> Vector {
        let mut tf: HashMap<u32, u32> = HashMap::new();
        for t in terms(text) {
            if let Some(&id) = self.vocabulary.get(&t) {
                *tf.entry(id).or_default() += 1;
            }
        }
        let mut tf: Vec<(u32, u32)> = tf.into_iter().collect();
        tf.sort_unstable();
        self.weigh(tf)
    }

    /// The cosine of a text with pool doc `i`.
    pub fn cosine(&self, text: &str, i: usize) -> f32 {
        dot(&self.vector(text), &self.docs[i])
    }

    /// Cosine with every pool doc that shares a feature with `text`: (doc, cosine), unsorted.
    pub fn scores(&self, text: &str) -> Vec<(usize, f32)> {
        let mut acc: HashMap<u32, f32> = HashMap::new();
        for (f, w) in self.vector(text) {
            for &(d, dw) in &self.postings[f as usize] {
                *acc.entry(d).or_default() += w * dw;
            }
        }
        acc.into_iter().map(|(d, s)| (d as usize, s)).collect()
    }
}

fn dot(a: &Vector, b: &Vector) -> f32 {
    let (mut i, mut j, mut s) = (0, 0, 0.0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                s += a[i].1 * b[j].1;
                i += 1;
                j += 1;
            }
        }
    }
    s
}
