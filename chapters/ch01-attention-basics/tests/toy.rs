//! The toy sentence reads as designed, and the figures render.

use ch01_attention_basics::attn_support::plot::png_bytes;
use ch01_attention_basics::figures::{QueryKeyGeometry, toy_heatmap};
use ch01_attention_basics::toy::{FEATURES, SENTENCE, embedding};
use ch01_attention_basics::toy_example;

#[test]
fn it_attends_to_cat() {
    let toy = toy_example().unwrap();
    let strongest = toy.strongest();
    let find = |word: &str| strongest.iter().find(|(q, _, _)| q == word).unwrap().clone();
    let (_, key, w) = find("it");
    assert_eq!(key, "cat");
    assert!(w > 0.9, "it → cat weight {w}");
    assert_eq!(find("tired").1, "cat");
    assert_eq!(find("on").1, "mat");
    assert_eq!(find("because").1, "sat");
    // After attention "it" carries cat's features: its output is mostly "animate".
    let it = toy.tokens.iter().position(|t| t == "it").unwrap();
    let animate = FEATURES.iter().position(|&f| f == "animate").unwrap();
    assert!(toy.output[[it, animate]] > 0.9, "{}", toy.output.row(it));
    // Weight rows are distributions.
    for row in toy.weights.rows() {
        assert!((row.sum() - 1.0).abs() < 1e-5);
    }
}

#[test]
fn the_table_marks_row_maxima_but_not_uniform_rows() {
    let toy = toy_example().unwrap();
    let table = toy.weight_table();
    let line = |word: &str| table.lines().find(|l| l.trim_start().starts_with(&format!("{word} │"))).unwrap();
    assert!(line("it").contains("[0.94]"), "{table}");
    assert!(!line("mat").contains('['), "mat looks for nothing, its row is uniform:\n{table}");
    assert_eq!(table.lines().count(), 2 + SENTENCE.split_whitespace().count());
}

#[test]
fn every_word_has_an_embedding() {
    assert!(SENTENCE.split_whitespace().all(|w| embedding(w).is_some()));
    assert!(embedding("dog").is_none());
}

#[test]
fn the_geometry_weights_follow_the_dot_products() {
    let g = QueryKeyGeometry::example();
    let (s, w) = (g.scores(), g.weights());
    assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    for i in 0..s.len() {
        for j in 0..s.len() {
            assert_eq!(s[i] > s[j], w[i] > w[j], "softmax keeps the order of the scores");
        }
    }
    // k₃ is orthogonal to q.
    assert!(s[2].abs() < 1e-12, "{s:?}");
}

#[test]
fn figures_render() {
    let toy = toy_example().unwrap();
    for png in [png_bytes(&toy_heatmap(&toy)).unwrap(), png_bytes(&QueryKeyGeometry::example()).unwrap()] {
        assert_eq!(&png[1..4], b"PNG");
        assert!(png.len() > 10_000);
    }
}
