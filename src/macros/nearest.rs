//! The known macro names nearest to a word, by edit distance, for "did you mean" hints: a
//! typo's message names two or three candidates rather than all sixty-odd names.

/// How many names a hint offers at most.
const MAX_HINTS: usize = 3;

/// The known names within a small edit distance of `word` (compared in lower case), nearest
/// first; empty when none is close.
pub(super) fn nearest(word: &str, names: impl Iterator<Item = &'static str>) -> Vec<&'static str> {
    let word = word.to_ascii_lowercase();
    // A third of the word, at least one: `clikid` finds `clickid`, `xyz` finds nothing.
    let within = (word.chars().count() / 3).max(1);
    let mut scored: Vec<(usize, usize, &'static str)> = names
        .enumerate()
        .map(|(order, name)| (distance(&word, name), order, name))
        .filter(|(d, _, _)| *d <= within)
        .collect();
    scored.sort_unstable();
    scored
        .into_iter()
        .take(MAX_HINTS)
        .map(|(_, _, name)| name)
        .collect()
}

/// "did you mean `{a}` or `{b}`?", or `fallback` when there is no candidate.
pub(super) fn hint(nearest: &[&str], fallback: &str) -> String {
    let quoted: Vec<String> = nearest.iter().map(|n| format!("`{{{n}}}`")).collect();
    match quoted.as_slice() {
        [] => fallback.to_owned(),
        [one] => format!("did you mean {one}?"),
        [rest @ .., last] => format!("did you mean {} or {last}?", rest.join(", ")),
    }
}

/// Levenshtein distance over characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        let table = [
            ("", "", 0),
            ("abc", "abc", 0),
            ("clikid", "clickid", 1),
            ("clickid", "click_id", 1),
            ("kitten", "sitting", 3),
            ("", "sub1", 4),
        ];
        for (a, b, want) in table {
            assert_eq!(distance(a, b), want, "{a} / {b}");
            assert_eq!(distance(b, a), want, "{b} / {a}");
        }
    }

    #[test]
    fn hints_name_the_nearest_few() {
        let names = [
            "clickid",
            "click_id",
            "status",
            "status_name",
            "sub1",
            "sub2",
            "sum",
        ];
        let near = |w: &str| nearest(w, names.iter().copied());
        assert_eq!(near("ClickID"), vec!["clickid", "click_id"]);
        assert_eq!(near("clikid"), vec!["clickid", "click_id"]);
        assert_eq!(near("statu"), vec!["status"]);
        assert_eq!(near("sub"), vec!["sub1", "sub2", "sum"], "at most three");
        assert!(near("xyzzy").is_empty());
        assert_eq!(hint(&[], "none"), "none");
        assert_eq!(hint(&["a"], "none"), "did you mean `{a}`?");
        assert_eq!(
            hint(&["a", "b", "c"], "none"),
            "did you mean `{a}`, `{b}` or `{c}`?"
        );
    }
}
