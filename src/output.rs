//! Text we print, made safe for where it lands (pure): a terminal gets control characters
//! escaped, a CSV file gets RFC 4180 quoting and cells that a spreadsheet would run as a
//! formula neutralised. Every table, CSV and receiver line of ours goes through here. A [`Cell`]
//! is one typed value of a printed row: text in a table or CSV, its own JSON type in JSON.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, Utc};

/// One value of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Text(String),
    Int(i64),
    /// A decimal as Postgres writes it (`1.50`): a number in JSON, the text elsewhere.
    Decimal(String),
    Bool(bool),
    List(Vec<String>),
    Time(DateTime<Utc>),
}

impl Cell {
    pub fn text(s: impl Into<String>) -> Cell {
        Cell::Text(s.into())
    }

    pub fn opt_text(s: Option<String>) -> Cell {
        s.map_or(Cell::Null, Cell::Text)
    }

    pub fn opt_time(t: Option<DateTime<Utc>>) -> Cell {
        t.map_or(Cell::Null, Cell::Time)
    }

    /// The text of the table and CSV (empty for null).
    pub fn as_text(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Text(s) | Cell::Decimal(s) => s.clone(),
            Cell::Int(n) => n.to_string(),
            Cell::Bool(b) => b.to_string(),
            Cell::List(items) => items.join(","),
            Cell::Time(t) => t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Cell::Null => Value::Null,
            Cell::Text(s) => s.clone().into(),
            Cell::Int(n) => (*n).into(),
            Cell::Decimal(s) => s
                .parse::<serde_json::Number>()
                .map_or_else(|_| s.clone().into(), Value::Number),
            Cell::Bool(b) => (*b).into(),
            Cell::List(items) => items.clone().into(),
            Cell::Time(t) => t.to_rfc3339_opts(SecondsFormat::AutoSi, true).into(),
        }
    }
}

/// A cell that begins with one of these is prefixed with `'`: a spreadsheet would otherwise
/// take `=HYPERLINK(…)`, `+1+cmd|…`, `-…`, `@SUM(…)` (or those behind a tab or a carriage
/// return) for a formula, and a partner's goal or comment would run in the operator's sheet.
const FORMULA_STARTS: &[char] = &['=', '+', '-', '@', '\t', '\r'];

/// One cell: neutralised, then quoted when it holds a comma, a quote or a line break.
pub fn csv_cell(text: &str) -> Cow<'_, str> {
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

/// One record: the cells joined by commas, then RFC 4180's line break (CRLF), which every
/// spreadsheet and CSV reader takes and `lines()` still splits.
pub fn csv_record<'a>(cells: impl IntoIterator<Item = &'a str>) -> String {
    let mut line = cells.into_iter().map(csv_cell).collect::<Vec<_>>().join(",");
    line.push_str("\r\n");
    line
}

/// The text with control characters escaped (`\u{1b}`, `\n`, …), so that printed data cannot
/// move the cursor, recolour or retitle the terminal, or forge a line; the bidirectional
/// controls too, which would reorder what the reader sees.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unprintable) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unprintable(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Control characters, and the bidirectional embeddings, overrides, isolates and marks.
fn unprintable(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            printable("a\u{1b}]0;pwned\u{7}\r\nb\té\u{9b}"),
            "a\\u{1b}]0;pwned\\u{7}\\r\\nb\\té\\u{9b}"
        );
        assert!(matches!(printable("plain é"), Cow::Borrowed("plain é")));
        // A right-to-left override would show `exe.txt` as `txt.exe`.
        assert_eq!(
            printable("a\u{202e}txt.exe\u{2066}"),
            "a\\u{202e}txt.exe\\u{2066}"
        );
    }

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
            assert_eq!(csv_cell(text), want, "{text:?}");
        }
        assert_eq!(csv_record(["id", "=x", "a,b"]), "id,'=x,\"a,b\"\r\n");
    }
}
