//! Pure pieces the pages share: the address of a view with one parameter changed, the "Edit
//! columns" form turned into a `columns` list, cells turned into text for a template.

use std::collections::HashSet;

use crate::output::Cell;

/// A query string's pairs, in order, as given.
pub type Pairs = Vec<(String, String)>;

/// Parses a query string (or a form body) into its pairs.
pub fn pairs(query: &str) -> Pairs {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The first value of `name`, if given and not blank.
pub fn value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, v)| k == name && !v.trim().is_empty())
        .map(|(_, v)| v.trim())
}

/// Every value of `name`, comma lists split, blanks left out.
pub fn values(pairs: &[(String, String)], name: &str) -> Vec<String> {
    pairs
        .iter()
        .filter(|(k, _)| k == name)
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `path?query` with every pair of the names in `drop` left out, blank values left out, and
/// `set` added; so a link keeps the view and changes one thing.
pub fn address(path: &str, pairs: &[(String, String)], drop: &[&str], set: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    let dropped: HashSet<&str> = drop.iter().chain(set.iter().map(|(k, _)| k)).copied().collect();
    for (k, v) in pairs {
        if !dropped.contains(k.as_str()) && !v.trim().is_empty() {
            q.append_pair(k, v);
        }
    }
    for (k, v) in set {
        q.append_pair(k, v);
    }
    let q = q.finish();
    if q.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{q}")
    }
}

/// The columns an "Edit columns" form chose: every ticked `show` (known names only), ordered
/// by its `pos_<name>` number, ties in the order of `known`.
pub fn edited_columns(pairs: &[(String, String)], known: &[&str]) -> Vec<String> {
    let shown: HashSet<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "show")
        .map(|(_, v)| v.as_str())
        .collect();
    let mut chosen: Vec<(u32, usize, &str)> = known
        .iter()
        .enumerate()
        .filter(|(_, name)| shown.contains(**name))
        .map(|(i, name)| {
            let pos = value(pairs, &format!("pos_{name}"))
                .and_then(|p| p.parse::<u32>().ok())
                .unwrap_or(u32::MAX);
            (pos, i, *name)
        })
        .collect();
    chosen.sort_unstable();
    chosen.into_iter().map(|(_, _, n)| n.to_owned()).collect()
}

/// One column in the "Edit columns" form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnChoice {
    pub name: String,
    pub shown: bool,
    /// Its place among the shown ones, or after them for hidden ones.
    pub pos: usize,
}

/// The form's rows: the shown columns first, in their order, then the others.
pub fn column_choices(shown: &[String], known: &[&str]) -> Vec<ColumnChoice> {
    let mut out: Vec<ColumnChoice> = shown
        .iter()
        .enumerate()
        .map(|(i, n)| ColumnChoice {
            name: n.clone(),
            shown: true,
            pos: i + 1,
        })
        .collect();
    for name in known.iter().filter(|n| !shown.iter().any(|s| s == *n)) {
        out.push(ColumnChoice {
            name: (*name).to_owned(),
            shown: false,
            pos: out.len() + 1,
        });
    }
    out
}

/// A cell as a template shows it: its text and a class for alignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellView {
    pub text: String,
    pub class: &'static str,
}

pub fn cell_view(column: &str, cell: &Cell) -> CellView {
    let class = match (column, cell) {
        ("http_code", _) => "num code",
        (_, Cell::Int(_) | Cell::Decimal(_)) => "num",
        ("postback_url", _) => "wrap url",
        ("error" | "notice" | "response_excerpt", _) => "wrap",
        _ => "",
    };
    CellView {
        text: cell.as_text(),
        class,
    }
}

/// A row's class from its HTTP code cell: `good` for 2xx, `bad` otherwise.
pub fn row_class(http_code: Option<&Cell>) -> &'static str {
    match http_code {
        Some(Cell::Int(c)) if (200..300).contains(c) => "good",
        Some(_) => "bad",
        None => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Pair = (&'static str, &'static str);

    fn p(list: &[Pair]) -> Pairs {
        list.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    #[test]
    fn address_keeps_the_view_and_changes_one_thing() {
        let view = p(&[
            ("offer_id", "7"),
            ("cursor", "abc"),
            ("goal", ""),
            ("columns", "date,goal"),
        ]);
        let cases: &[(&[&str], &[Pair], &str)] = &[
            (&[], &[], "/?offer_id=7&cursor=abc&columns=date%2Cgoal"),
            (&["cursor"], &[], "/?offer_id=7&columns=date%2Cgoal"),
            (
                &[],
                &[("cursor", "xyz")],
                "/?offer_id=7&columns=date%2Cgoal&cursor=xyz",
            ),
            (&["offer_id", "cursor", "columns"], &[], "/"),
        ];
        for (drop, set, want) in cases {
            assert_eq!(address("/", &view, drop, set), *want);
        }
    }

    #[test]
    fn values_split_comma_lists_and_repeats() {
        let q = p(&[
            ("affiliate_id", "1, 2"),
            ("affiliate_id", "3"),
            ("affiliate_id", ""),
            ("x", "9"),
        ]);
        assert_eq!(values(&q, "affiliate_id"), vec!["1", "2", "3"]);
        assert_eq!(value(&q, "affiliate_id"), Some("1, 2"));
        assert_eq!(value(&q, "nope"), None);
    }

    #[test]
    fn edited_columns_follow_ticks_and_numbers() {
        let known = ["date", "goal", "status", "revenue"];
        let cases: &[(&[Pair], &[&str])] = &[
            (&[("show", "goal"), ("show", "date")], &["date", "goal"]),
            (
                &[
                    ("show", "goal"),
                    ("show", "date"),
                    ("pos_goal", "1"),
                    ("pos_date", "2"),
                ],
                &["goal", "date"],
            ),
            (&[("show", "nope"), ("show", "status")], &["status"]),
            (&[("pos_goal", "1")], &[]),
            (
                &[
                    ("show", "revenue"),
                    ("pos_revenue", "x"),
                    ("show", "date"),
                    ("pos_date", "3"),
                ],
                &["date", "revenue"],
            ),
        ];
        for (form, want) in cases {
            assert_eq!(edited_columns(&p(form), &known), *want, "{form:?}");
        }
    }

    #[test]
    fn column_choices_put_shown_first() {
        let c = column_choices(&["goal".into(), "date".into()], &["date", "goal", "status"]);
        let names: Vec<(&str, bool, usize)> = c.iter().map(|c| (c.name.as_str(), c.shown, c.pos)).collect();
        assert_eq!(
            names,
            vec![("goal", true, 1), ("date", true, 2), ("status", false, 3)]
        );
    }
}
