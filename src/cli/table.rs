//! Output of rows as an aligned table, CSV or JSON.

use super::Format;

/// Prints rows; `numeric` names the columns whose values are numbers in JSON.
pub fn print(format: Format, header: &[&str], rows: &[Vec<Option<String>>], numeric: &[&str]) {
    let out = render(format, header, rows, numeric);
    print!("{out}");
}

pub fn render(format: Format, header: &[&str], rows: &[Vec<Option<String>>], numeric: &[&str]) -> String {
    match format {
        Format::Table => table(header, rows),
        Format::Csv => csv(header, rows),
        Format::Json => json(header, rows, numeric),
    }
}

fn table(header: &[&str], rows: &[Vec<Option<String>>]) -> String {
    // A line break or tab would break the columns; any other control character is escaped.
    let cell = |c: &Option<String>| {
        let text = c.as_deref().unwrap_or("").replace(['\n', '\r', '\t'], " ");
        crate::output::printable(&text).into_owned()
    };
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, c) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell(c).chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_owned() + "\n"
    };
    let mut out = line(header.iter().map(|h| h.to_uppercase()).collect());
    for row in rows {
        out += &line(row.iter().map(cell).collect());
    }
    out
}

/// Every CSV we write goes through [`crate::output`], which neutralises formula cells.
fn csv(header: &[&str], rows: &[Vec<Option<String>>]) -> String {
    let mut out = crate::output::csv_record(header.iter().copied());
    for row in rows {
        out += &crate::output::csv_record(row.iter().map(|c| c.as_deref().unwrap_or("")));
    }
    out
}

fn json(header: &[&str], rows: &[Vec<Option<String>>], numeric: &[&str]) -> String {
    let objects: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            let map = header
                .iter()
                .zip(row)
                .map(|(h, c)| {
                    let v = match c {
                        None => serde_json::Value::Null,
                        Some(s) if numeric.contains(h) => {
                            s.parse::<i64>().map_or_else(|_| s.clone().into(), Into::into)
                        }
                        Some(s) => s.clone().into(),
                    };
                    ((*h).to_owned(), v)
                })
                .collect();
            serde_json::Value::Object(map)
        })
        .collect();
    serde_json::to_string_pretty(&objects).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let rows = vec![vec![Some("1".to_owned()), Some("a,\"b\"".to_owned()), None]];
        let header = ["id", "text", "none"];
        assert_eq!(
            render(Format::Csv, &header, &rows, &["id"]),
            "id,text,none\n1,\"a,\"\"b\"\"\",\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render(Format::Json, &header, &rows, &["id"])).expect("json");
        assert_eq!(
            json,
            serde_json::json!([{"id": 1, "text": "a,\"b\"", "none": null}])
        );
        let formulas = vec![vec![Some("-1".to_owned()), Some("=cmd()".to_owned()), None]];
        assert_eq!(
            render(Format::Csv, &header, &formulas, &["id"]),
            "id,text,none\n'-1,'=cmd(),\n"
        );
        assert_eq!(
            render(Format::Table, &header, &rows, &[]),
            "ID  TEXT   NONE\n1   a,\"b\"\n"
        );
    }
}
