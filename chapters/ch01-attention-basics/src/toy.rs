//! A toy sentence with hand-made embeddings, small enough to read every weight.
//!
//! Each word is described by 8 features a person can read (is it animate? a place? a pronoun?).
//! Two small projection matrices turn the features into a *query* ("what am I looking for?")
//! and a *key* ("what do I offer?") in a 3-slot space: an animate being, a place, an action.
//! The values are the features themselves, so the output row of a word is a
//! weighted mix of the features of the words it attends to: after attention, "it" carries the
//! features of "cat".

use crate::cpu::{attention, attention_weights};
use attn_support::ndarray::Array2;
use attn_support::{Error, Result};
use std::fmt::Write;

/// The sentence, split on spaces into tokens.
pub const SENTENCE: &str = "the cat sat on the mat because it was tired";

/// The 8 readable features of the hand-made embeddings.
pub const FEATURES: [&str; 8] =
    ["animate", "place", "action", "pronoun", "state", "determiner", "preposition", "conjunction"];

/// The 3 slots of the query/key space.
pub const SLOTS: [&str; 3] = ["animate being", "place", "action"];

// ANCHOR: embeddings
/// The embedding (feature vector) of a word of [`SENTENCE`]. Equal words get equal vectors:
/// nothing here encodes position (chapter 6 adds it).
pub fn embedding(word: &str) -> Option<[f32; 8]> {
    //               anim place act  pron state det  prep conj
    let e = match word {
        "the" => [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0],
        "cat" => [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        "sat" => [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        "on" => [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0],
        "mat" => [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        "because" => [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
        "it" => [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0],
        "was" => [0.0, 0.0, 0.5, 0.0, 0.5, 0.0, 0.0, 0.0],
        "tired" => [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
        _ => return None,
    };
    Some(e)
}

/// W_k (8 × 3): what each feature *offers*. Animate things offer an animate being, places a
/// place, actions an action; the other features offer nothing.
pub fn key_projection() -> Array2<f32> {
    let mut w = Array2::zeros((8, 3));
    w[[0, 0]] = 2.0; // animate → animate being
    w[[1, 1]] = 2.0; // place   → place
    w[[2, 2]] = 2.0; // action  → action
    w
}

/// W_q (8 × 3): what each feature *looks for*. A pronoun looks for an animate being to refer
/// to, a state ("tired") for who is in it, an action for who does it and where, a determiner
/// for its noun, a preposition for a place, a conjunction for an action, an animate being for
/// what it does. A place looks for nothing.
pub fn query_projection() -> Array2<f32> {
    let mut w = Array2::zeros((8, 3));
    w[[3, 0]] = 2.5; // pronoun     → animate being
    w[[4, 0]] = 2.0; // state       → animate being
    w[[2, 0]] = 1.5; // action      → animate being (its subject)
    w[[2, 1]] = 1.0; // action      → place (where it happens)
    w[[5, 0]] = 1.0; // determiner  → animate being or place (its noun)
    w[[5, 1]] = 1.0;
    w[[6, 1]] = 2.0; // preposition → place
    w[[7, 2]] = 2.0; // conjunction → action
    w[[0, 2]] = 1.0; // animate     → action (what it does)
    w
}
// ANCHOR_END: embeddings

/// Everything about the toy sentence: tokens, embeddings X, Q = X W_q, K = X W_k, V = X, the
/// weights softmax(Q Kᵀ) and the output softmax(Q Kᵀ) V.
#[derive(Clone, Debug)]
pub struct ToyExample {
    pub tokens: Vec<String>,
    pub embeddings: Array2<f32>,
    pub q: Array2<f32>,
    pub k: Array2<f32>,
    pub v: Array2<f32>,
    pub weights: Array2<f32>,
    pub output: Array2<f32>,
}

/// Embed [`SENTENCE`], project and attend.
pub fn toy_example() -> Result<ToyExample> {
    let tokens: Vec<String> = SENTENCE.split_whitespace().map(String::from).collect();
    let mut features = Vec::with_capacity(tokens.len() * FEATURES.len());
    for word in &tokens {
        let e =
            embedding(word).ok_or_else(|| Error::InvalidArgument(format!("no embedding for {word:?}")))?;
        features.extend_from_slice(&e);
    }
    let embeddings = Array2::from_shape_vec((tokens.len(), FEATURES.len()), features)
        .map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let q = embeddings.dot(&query_projection());
    let k = embeddings.dot(&key_projection());
    let v = embeddings.clone();
    let weights = attention_weights(q.view(), k.view())?;
    let output = attention(q.view(), k.view(), v.view())?;
    Ok(ToyExample { tokens, embeddings, q, k, v, weights, output })
}

impl ToyExample {
    /// For each query word, the key word it gives the largest weight, and that weight.
    pub fn strongest(&self) -> Vec<(String, String, f32)> {
        self.weights
            .rows()
            .into_iter()
            .zip(&self.tokens)
            .map(|(row, word)| {
                // The first largest weight (a uniform row reports its first key).
                let (j, w) = row
                    .iter()
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |best, (j, &w)| if w > best.1 { (j, w) } else { best });
                (word.clone(), self.tokens[j].clone(), w)
            })
            .collect()
    }

    /// The weight table as text: one row per query word, one column per key word, the largest
    /// weight of each row in brackets.
    pub fn weight_table(&self) -> String {
        let corner = "query ↓  key →";
        let longest = self.tokens.iter().map(|t| t.chars().count()).max().unwrap_or(1);
        let label_w = corner.chars().count().max(longest);
        let cell_w = longest.max(6);
        let mut s = format!("{corner:>label_w$} │");
        for t in &self.tokens {
            let _ = write!(s, " {t:>cell_w$}");
        }
        let _ = writeln!(s, "\n{}┼{}", "─".repeat(label_w + 1), "─".repeat((cell_w + 1) * self.tokens.len()));
        for (row, word) in self.weights.rows().into_iter().zip(&self.tokens) {
            let max = row.fold(f32::NEG_INFINITY, |m, &w| m.max(w));
            // Bracket the largest weight(s), unless the row is uniform and nothing stands out.
            let uniform = row.iter().all(|&w| w == max);
            let _ = write!(s, "{word:>label_w$} │");
            for &w in row {
                let cell = if w == max && !uniform { format!("[{w:.2}]") } else { format!("{w:.2}") };
                let _ = write!(s, " {cell:>cell_w$}");
            }
            s.push('\n');
        }
        s
    }
}
