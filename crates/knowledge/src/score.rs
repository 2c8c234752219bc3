//! Search terms and scores. A query becomes plain words (letters and digits, lower-cased, at
//! most [`MAX_TERMS`]), which each index adapter writes in its own syntax (PostgreSQL's
//! `websearch_to_tsquery` with `or`, FTS5's quoted terms with `OR`): any word may match, the
//! best matches rank first. An adapter's raw relevance (higher is better, unbounded) becomes a
//! score in [0, 1] with [`normalise`], which keeps order.

/// The most words of a query that are searched for.
pub const MAX_TERMS: usize = 32;

/// The words of `query` to search for: runs of letters and digits, lower-cased, each once, in
/// the order they first appear.
pub fn terms(query: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in query.split(|c: char| !c.is_alphanumeric()) {
        if word.is_empty() {
            continue;
        }
        let word = word.to_lowercase();
        if !out.contains(&word) {
            out.push(word);
            if out.len() == MAX_TERMS {
                break;
            }
        }
    }
    out
}

/// A raw relevance (≥ 0, higher is better) as a score in [0, 1]: `r / (1 + r)`, strictly
/// increasing, 0 for 0 (and for a negative or non-finite relevance, which no adapter should
/// produce), approaching 1 for large relevance. Absolute, not relative to the best hit: a
/// score means the same from one query to the next, so a threshold can be set on it.
pub fn normalise(relevance: f64) -> f64 {
    if relevance.is_nan() || relevance <= 0.0 {
        return 0.0;
    }
    if relevance.is_infinite() {
        return 1.0;
    }
    relevance / (1.0 + relevance)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn terms_are_words_lower_cased_once() {
        assert_eq!(terms("How do I reset my PASSWORD? reset!"), vec!["how", "do", "i", "reset", "my", "password"]);
        assert_eq!(terms("  ?!  "), Vec::<String>::new());
        assert_eq!(terms(r#"a" OR "b* NEAR(c)"#), vec!["a", "or", "b", "near", "c"]);
        assert_eq!(terms(&"w ".repeat(40)).len(), 1);
    }

    proptest! {
        /// Normalisation keeps order and stays within [0, 1]: for relevances a ≤ b,
        /// 0 ≤ normalise(a) ≤ normalise(b) ≤ 1, and a < b gives a strictly lower score while
        /// the scores can still tell them apart (the reference is the order of the inputs).
        #[test]
        fn normalisation_keeps_order_within_the_unit_interval(x in 0.0f64..1e6, y in 0.0f64..1e6) {
            let (a, b) = if x <= y { (x, y) } else { (y, x) };
            let (na, nb) = (normalise(a), normalise(b));
            prop_assert!((0.0..=1.0).contains(&na) && (0.0..=1.0).contains(&nb));
            prop_assert!(na <= nb);
            if a < b && b < 1e3 && b - a > 1e-9 {
                prop_assert!(na < nb);
            }
        }

        /// Sorting hits by relevance and by normalised score gives the same order.
        #[test]
        fn ranking_by_score_is_ranking_by_relevance(relevances in proptest::collection::vec(0.0f64..100.0, 0..50)) {
            let mut by_relevance: Vec<usize> = (0..relevances.len()).collect();
            by_relevance.sort_by(|&x, &y| relevances[y].total_cmp(&relevances[x]).then(x.cmp(&y)));
            let mut by_score: Vec<usize> = (0..relevances.len()).collect();
            by_score.sort_by(|&x, &y| normalise(relevances[y]).total_cmp(&normalise(relevances[x])).then(x.cmp(&y)));
            prop_assert_eq!(by_relevance, by_score);
        }
    }

    #[test]
    fn edge_relevances() {
        assert_eq!(normalise(0.0), 0.0);
        assert_eq!(normalise(-3.0), 0.0);
        assert_eq!(normalise(f64::NAN), 0.0);
        assert_eq!(normalise(f64::INFINITY), 1.0);
        assert!((normalise(1.0) - 0.5).abs() < 1e-12);
    }
}
