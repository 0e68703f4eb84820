//! "Did you mean ...?": the nearest known word to a misspelt one, by edit distance.

/// The candidate nearest to `word` (optimal string alignment distance, i.e. Damerau-Levenshtein
/// where a transposition of neighbours costs 1, compared case-insensitively), if it is near
/// enough to be a plausible typo: at most one edit per three characters, and at least one.
/// Ties go to the earlier candidate.
pub fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word_lower = word.to_lowercase();
    let mut best: Option<(usize, &'a str)> = None;
    for &candidate in candidates {
        let distance = edit_distance(&word_lower, &candidate.to_lowercase());
        let longest = word.chars().count().max(candidate.chars().count());
        let allowed = (longest / 3).max(1);
        if distance <= allowed && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// Optimal string alignment distance: insertions, deletions, substitutions and transpositions
/// of adjacent characters each cost 1.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for (i, cell) in d.iter_mut().step_by(width).enumerate() {
        *cell = i;
    }
    for (j, cell) in d.iter_mut().take(width).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = v;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("", "ab"), 2);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("segmnet", "segment"), 1);
        assert_eq!(edit_distance("ca", "abc"), 3);
    }

    #[test]
    fn suggests_near_misses() {
        let keys = ["type", "from", "priority", "limit", "normalize"];
        assert_eq!(suggest("priorty", &keys), Some("priority"));
        assert_eq!(suggest("prority", &keys), Some("priority"));
        assert_eq!(suggest("tpye", &keys), Some("type"));
        assert_eq!(suggest("Limit", &keys), Some("limit"));
        assert_eq!(suggest("normalise", &keys), Some("normalize"));
        assert_eq!(
            suggest("segmnet", &["events", "segment", "rudderstack"]),
            Some("segment")
        );
        assert_eq!(suggest("usrId", &["userId", "anonymousId"]), Some("userId"));
    }

    #[test]
    fn refuses_far_words() {
        let keys = ["type", "from", "priority", "limit", "normalize"];
        assert_eq!(suggest("colour", &keys), None);
        assert_eq!(suggest("x", &["type"]), None);
        assert_eq!(suggest("anything", &[]), None);
    }

    #[test]
    fn prefers_the_nearest_then_the_first() {
        assert_eq!(suggest("cat", &["bat", "cat"]), Some("cat"));
        assert_eq!(suggest("cat", &["bat", "hat"]), Some("bat"));
    }
}
