//! Output of rows as an aligned table, CSV or JSON. Cells are typed, so that JSON gets real
//! booleans, numbers, arrays and RFC 3339 times, while the table and CSV get text (times with
//! `UTC` said).

use super::Format;
pub use crate::output::Cell;

/// How wide a table cell may be: `None` for no limit.
pub type Widths<'a> = &'a dyn Fn(&str) -> Option<usize>;

/// Prints rows.
pub fn print(format: Format, header: &[&str], rows: &[Vec<Cell>]) {
    print!("{}", render(format, header, rows, &|_| None));
}

/// Prints rows, table cells cut to `widths` (with `…`).
pub fn print_narrow(format: Format, header: &[&str], rows: &[Vec<Cell>], widths: Widths<'_>) {
    print!("{}", render(format, header, rows, widths));
}

pub fn render(format: Format, header: &[&str], rows: &[Vec<Cell>], widths: Widths<'_>) -> String {
    match format {
        Format::Table => table(header, rows, widths),
        Format::Csv => csv(header, rows),
        Format::Json => json(header, rows),
    }
}

fn table(header: &[&str], rows: &[Vec<Cell>], limit: Widths<'_>) -> String {
    // A line break or tab would break the columns; any other control character is escaped.
    let cell = |name: &str, c: &Cell| {
        let text = c.as_text().replace(['\n', '\r', '\t'], " ");
        let text = crate::output::printable(&text).into_owned();
        match limit(name) {
            Some(max) if text.chars().count() > max => {
                text.chars().take(max.saturating_sub(1)).collect::<String>() + "…"
            }
            _ => text,
        }
    };
    let texts: Vec<Vec<String>> = rows
        .iter()
        .map(|row| header.iter().zip(row).map(|(h, c)| cell(h, c)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &texts {
        for (i, c) in row.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_owned() + "\n"
    };
    let upper: Vec<String> = header.iter().map(|h| h.to_uppercase()).collect();
    let mut out = line(&upper);
    for row in &texts {
        out += &line(row);
    }
    out
}

/// Every CSV we write goes through [`crate::output`], which neutralises formula cells.
fn csv(header: &[&str], rows: &[Vec<Cell>]) -> String {
    let mut out = crate::output::csv_record(header.iter().copied());
    for row in rows {
        let texts: Vec<String> = row.iter().map(Cell::as_text).collect();
        out += &crate::output::csv_record(texts.iter().map(String::as_str));
    }
    out
}

/// An array of objects, one a line, keys in the order of `header` (a JSON map of ours would
/// sort them).
fn json(header: &[&str], rows: &[Vec<Cell>]) -> String {
    let objects: Vec<String> = rows
        .iter()
        .map(|row| {
            let fields: Vec<String> = header
                .iter()
                .zip(row)
                .map(|(h, c)| format!("{}: {}", serde_json::Value::from(*h), c.to_json()))
                .collect();
            format!("  {{{}}}", fields.join(", "))
        })
        .collect();
    if objects.is_empty() {
        return "[]\n".to_owned();
    }
    format!("[\n{}\n]\n", objects.join(",\n"))
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;

    fn render_all(format: Format, header: &[&str], rows: &[Vec<Cell>]) -> String {
        render(format, header, rows, &|_| None)
    }

    #[test]
    fn formats() {
        let rows = vec![vec![Cell::Int(1), Cell::text("a,\"b\""), Cell::Null]];
        let header = ["id", "text", "none"];
        assert_eq!(
            render_all(Format::Csv, &header, &rows),
            "id,text,none\r\n1,\"a,\"\"b\"\"\",\r\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render_all(Format::Json, &header, &rows)).expect("json");
        assert_eq!(
            json,
            serde_json::json!([{"id": 1, "text": "a,\"b\"", "none": null}])
        );
        let formulas = vec![vec![Cell::Int(-1), Cell::text("=cmd()"), Cell::Null]];
        assert_eq!(
            render_all(Format::Csv, &header, &formulas),
            "id,text,none\r\n'-1,'=cmd(),\r\n"
        );
        assert_eq!(
            render_all(Format::Table, &header, &rows),
            "ID  TEXT   NONE\n1   a,\"b\"\n"
        );
    }

    #[test]
    fn json_has_real_types_in_the_order_of_the_header() {
        let t = DateTime::parse_from_rfc3339("2026-12-01T16:30:05.250+00:00")
            .expect("time")
            .with_timezone(&Utc);
        let header = ["z_enabled", "a_statuses", "m_sum", "b_at", "id"];
        let rows = vec![vec![
            Cell::Bool(true),
            Cell::List(vec!["approved".into(), "pending".into()]),
            Cell::Decimal("1.50".into()),
            Cell::Time(t),
            Cell::Int(7),
        ]];
        let out = render_all(Format::Json, &header, &rows);
        assert_eq!(
            out,
            "[\n  {\"z_enabled\": true, \"a_statuses\": [\"approved\",\"pending\"], \"m_sum\": 1.5, \"b_at\": \"2026-12-01T16:30:05.250Z\", \"id\": 7}\n]\n"
        );
        assert_eq!(render_all(Format::Json, &header, &[]), "[]\n");
        let csv = render_all(Format::Csv, &header, &rows);
        assert_eq!(
            csv.lines().nth(1),
            Some("true,\"approved,pending\",1.50,2026-12-01 16:30:05 UTC,7")
        );
    }

    #[test]
    fn narrow_tables_cut_long_cells() {
        let rows = vec![vec![Cell::text("abcdefghij"), Cell::text("xyz")]];
        let out = render(Format::Table, &["url", "s"], &rows, &|c| {
            (c == "url").then_some(5)
        });
        assert_eq!(out, "URL    S\nabcd…  xyz\n");
    }
}
