//! CSV as every writer of ours makes it (pure): RFC 4180 quoting, and cells that a spreadsheet
//! would run as a formula neutralised.

use std::borrow::Cow;

/// A cell that begins with one of these is prefixed with `'`: a spreadsheet would otherwise
/// take `=HYPERLINK(…)`, `+1+cmd|…`, `-…`, `@SUM(…)` (or those behind a tab or a carriage
/// return) for a formula, and a partner's goal or comment would run in the operator's sheet.
const FORMULA_STARTS: &[char] = &['=', '+', '-', '@', '\t', '\r'];

/// One cell: neutralised, then quoted when it holds a comma, a quote or a line break.
pub fn cell(text: &str) -> Cow<'_, str> {
    let text: Cow<'_, str> = if text.starts_with(FORMULA_STARTS) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    };
    if text.contains([',', '"', '\n', '\r']) {
        Cow::Owned(format!("\"{}\"", text.replace('"', "\"\"")))
    } else {
        text
    }
}

/// One record: the cells joined by commas, then a line break.
pub fn record<'a>(cells: impl IntoIterator<Item = &'a str>) -> String {
    let mut line = cells.into_iter().map(cell).collect::<Vec<_>>().join(",");
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells() {
        for (text, want) in [
            ("plain", "plain"),
            ("", ""),
            ("a,b", "\"a,b\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("=HYPERLINK(\"http://x\")", "\"'=HYPERLINK(\"\"http://x\"\")\""),
            ("+1+cmd", "'+1+cmd"),
            ("-2", "'-2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "\"'\r=1\""),
            ("a=1", "a=1"),
            ("1-2", "1-2"),
        ] {
            assert_eq!(cell(text), want, "{text:?}");
        }
        assert_eq!(record(["id", "=x", "a,b"]), "id,'=x,\"a,b\"\n");
    }
}
