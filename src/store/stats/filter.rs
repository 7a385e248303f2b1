//! The statistics table's filters and keyset cursor, and the `WHERE` clause built from them
//! (pure). Only the filters given become conditions: `offer_id = $1`, never
//! `($1 IS NULL OR offer_id = $1)`, so Postgres can take the index that fits each.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;

/// A response's status class: `2xx` … `5xx`, or `none` (no response at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpClass {
    C2xx,
    C3xx,
    C4xx,
    C5xx,
    None,
}

impl HttpClass {
    pub const ALL: [HttpClass; 5] = [
        HttpClass::C2xx,
        HttpClass::C3xx,
        HttpClass::C4xx,
        HttpClass::C5xx,
        HttpClass::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HttpClass::C2xx => "2xx",
            HttpClass::C3xx => "3xx",
            HttpClass::C4xx => "4xx",
            HttpClass::C5xx => "5xx",
            HttpClass::None => "none",
        }
    }

    pub fn parse(text: &str) -> Option<HttpClass> {
        HttpClass::ALL.into_iter().find(|c| c.as_str() == text)
    }

    /// The condition on `a.http_code`.
    fn condition(self) -> &'static str {
        match self {
            HttpClass::C2xx => "(a.http_code >= 200 AND a.http_code < 300)",
            HttpClass::C3xx => "(a.http_code >= 300 AND a.http_code < 400)",
            HttpClass::C4xx => "(a.http_code >= 400 AND a.http_code < 500)",
            HttpClass::C5xx => "(a.http_code >= 500 AND a.http_code < 600)",
            HttpClass::None => "a.http_code IS NULL",
        }
    }
}

/// Which attempts to read. `None` is "any"; a list matches any of its values, and an empty
/// list matches nothing (what a partner link's scope leaves of ids outside it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// From this time, inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Before this time.
    pub to: Option<DateTime<Utc>>,
    pub offer_ids: Option<Vec<String>>,
    pub affiliate_ids: Option<Vec<String>>,
    pub conversion_id: Option<String>,
    pub goal: Option<String>,
    /// The conversion status (lower-case word).
    pub status: Option<String>,
    pub http_classes: Option<Vec<HttpClass>>,
    pub error_code: Option<String>,
    /// The delivery's state now.
    pub state: Option<String>,
    pub url_id: Option<i64>,
}

impl Filter {
    /// Whether the filter reads the delivery's row (its state).
    pub(crate) fn needs_delivery(&self) -> bool {
        self.state.is_some()
    }
}

/// The years a time given from outside may name. Postgres stores 4713 BC to 294276 AD and
/// answers an error for anything else; no attempt is older than year 1 or newer than 9999.
pub const YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

/// Whether `t` is inside [`YEARS`], so a statement with it cannot fail on its range.
pub fn storable(t: DateTime<Utc>) -> bool {
    use chrono::Datelike;
    YEARS.contains(&t.year())
}

/// Which way a cursor pages: to older rows (`next`) or to newer ones (`previous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Older,
    Newer,
}

/// A position in the table, newest first: the `(sent_at, id)` of a row and which way to go
/// from it. Opaque to clients: base64 of `o|<µs>|<id>` or `n|…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub direction: Direction,
    pub sent_at: DateTime<Utc>,
    pub id: i64,
}

impl Cursor {
    pub fn encode(&self) -> String {
        let d = match self.direction {
            Direction::Older => 'o',
            Direction::Newer => 'n',
        };
        let text = format!("{d}|{}|{}", self.sent_at.timestamp_micros(), self.id);
        URL_SAFE_NO_PAD.encode(text)
    }

    pub fn decode(text: &str) -> Result<Cursor, String> {
        let bad = || "not a cursor of this API (use next_cursor as given)".to_owned();
        let bytes = URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| bad())?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let mut parts = text.split('|');
        let direction = match parts.next() {
            Some("o") => Direction::Older,
            Some("n") => Direction::Newer,
            _ => return Err(bad()),
        };
        let micros: i64 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let id: i64 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        if parts.next().is_some() {
            return Err(bad());
        }
        let sent_at = DateTime::<Utc>::from_timestamp_micros(micros)
            .filter(|t| storable(*t))
            .ok_or_else(bad)?;
        Ok(Cursor {
            direction,
            sent_at,
            id,
        })
    }
}

/// A statement's text so far and its parameters.
#[derive(Debug, Default)]
pub(crate) struct Sql {
    pub params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Sql {
    /// Adds a parameter; returns its placeholder.
    fn bind<T: ToSql + Sync + Send + 'static>(&mut self, value: T) -> String {
        self.params.push(Box::new(value));
        format!("${}", self.params.len())
    }

    pub fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// The conditions of `f` (and of the cursor), joined by `AND`; `true` when there are none.
pub(crate) fn where_clause(f: &Filter, cursor: Option<&Cursor>, sql: &mut Sql) -> String {
    let mut all: Vec<String> = Vec::new();
    for (column, ids) in [("a.offer_id", &f.offer_ids), ("a.affiliate_id", &f.affiliate_ids)] {
        match ids.as_deref() {
            None => {}
            Some([]) => all.push("false".into()),
            Some([one]) => all.push(format!("{column} = {}", sql.bind(one.clone()))),
            Some(many) => all.push(format!("{column} = ANY({})", sql.bind(many.to_vec()))),
        }
    }
    if let Some(t) = f.from {
        all.push(format!("a.sent_at >= {}", sql.bind(t)));
    }
    if let Some(t) = f.to {
        all.push(format!("a.sent_at < {}", sql.bind(t)));
    }
    for (column, value) in [
        ("a.conversion_id", &f.conversion_id),
        ("a.goal", &f.goal),
        ("a.status", &f.status),
        ("a.error_code", &f.error_code),
        ("d.state", &f.state),
    ] {
        if let Some(v) = value {
            all.push(format!("{column} = {}", sql.bind(v.clone())));
        }
    }
    if let Some(id) = f.url_id {
        all.push(format!("a.url_id = {}", sql.bind(id)));
    }
    if let Some(classes) = &f.http_classes {
        let any: Vec<&str> = classes.iter().map(|c| c.condition()).collect();
        all.push(match any.as_slice() {
            [] => "false".into(),
            [one] => (*one).to_owned(),
            many => format!("({})", many.join(" OR ")),
        });
    }
    if let Some(c) = cursor {
        let op = match c.direction {
            Direction::Older => "<",
            Direction::Newer => ">",
        };
        let (t, id) = (sql.bind(c.sent_at), sql.bind(c.id));
        all.push(format!("(a.sent_at, a.id) {op} ({t}, {id})"));
    }
    if all.is_empty() {
        "true".into()
    } else {
        all.join(" AND ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clause(f: &Filter, cursor: Option<&Cursor>) -> (String, usize) {
        let mut sql = Sql::default();
        let text = where_clause(f, cursor, &mut sql);
        (text, sql.params.len())
    }

    #[test]
    fn only_the_filters_given_become_conditions() {
        let t = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let cases: Vec<(Filter, &str, usize)> = vec![
            (Filter::default(), "true", 0),
            (
                Filter {
                    offer_ids: Some(vec!["7".into()]),
                    ..Filter::default()
                },
                "a.offer_id = $1",
                1,
            ),
            (
                Filter {
                    affiliate_ids: Some(vec!["1".into(), "2".into()]),
                    ..Filter::default()
                },
                "a.affiliate_id = ANY($1)",
                1,
            ),
            (
                Filter {
                    offer_ids: Some(vec![]),
                    ..Filter::default()
                },
                "false",
                0,
            ),
            (
                Filter {
                    from: Some(t),
                    to: Some(t),
                    status: Some("approved".into()),
                    url_id: Some(3),
                    ..Filter::default()
                },
                "a.sent_at >= $1 AND a.sent_at < $2 AND a.status = $3 AND a.url_id = $4",
                4,
            ),
            (
                Filter {
                    http_classes: Some(vec![HttpClass::C2xx, HttpClass::None]),
                    state: Some("failed".into()),
                    ..Filter::default()
                },
                "d.state = $1 AND ((a.http_code >= 200 AND a.http_code < 300) OR a.http_code IS NULL)",
                1,
            ),
        ];
        for (f, want, params) in cases {
            assert_eq!(clause(&f, None), (want.to_owned(), params), "{f:?}");
        }
        let older = Cursor {
            direction: Direction::Older,
            sent_at: t,
            id: 9,
        };
        assert_eq!(
            clause(&Filter::default(), Some(&older)),
            ("(a.sent_at, a.id) < ($1, $2)".to_owned(), 2)
        );
        let newer = Cursor {
            direction: Direction::Newer,
            ..older
        };
        assert_eq!(
            clause(&Filter::default(), Some(&newer)).0,
            "(a.sent_at, a.id) > ($1, $2)"
        );
    }

    #[test]
    fn a_cursor_survives_its_text_and_junk_is_refused() {
        let t = DateTime::<Utc>::from_timestamp_micros(1_700_000_000_123_456).unwrap_or_default();
        for direction in [Direction::Older, Direction::Newer] {
            let c = Cursor {
                direction,
                sent_at: t,
                id: 42,
            };
            assert_eq!(Cursor::decode(&c.encode()), Ok(c));
        }
        for junk in ["", "x", "bzEyMw", "b3wxfDJ8Mw", "%%%", "eHwxfDI"] {
            assert!(Cursor::decode(junk).is_err(), "{junk}");
        }
        for class in HttpClass::ALL {
            assert_eq!(HttpClass::parse(class.as_str()), Some(class));
        }
    }
}
