//! The JSON Schema against the parser: the committed file is what the code generates, and the
//! two agree on every case the parser's tests and the shipped examples try.

use std::sync::LazyLock;

use super::wire::{self, Kind};
use super::*;

const COMMITTED: &str = include_str!("../../docs/event.schema.json");
const SCHEMA_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/event.schema.json");

static VALIDATOR: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    jsonschema::validator_for(&wire::schema()).unwrap_or_else(|e| panic!("the schema compiles: {e}"))
});

/// The schema file's text: pretty JSON and a final newline.
fn generated() -> String {
    let mut text = serde_json::to_string_pretty(&wire::schema()).expect("serialises");
    text.push('\n');
    text
}

/// Whether the schema accepts a body; `None` when the body is no JSON a validator can read
/// (not UTF-8, not JSON, a lone surrogate, a number too large for a double).
pub(super) fn schema_accepts(body: &[u8]) -> Option<bool> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some(VALIDATOR.is_valid(&value))
}

/// Reasons the schema expresses: a body the parser refuses for one of them fails the schema.
fn expressible(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::NotObject | Reason::MissingField | Reason::WrongType | Reason::BadStatus | Reason::BadText
    )
}

/// Checks that the schema agrees with the parser's verdict on `body`.
pub(super) fn assert_agrees(body: &[u8], verdict: &Result<Event, Invalid>) {
    let Some(accepted) = schema_accepts(body) else {
        return;
    };
    let shown = String::from_utf8_lossy(body);
    match verdict {
        Ok(_) => assert!(accepted, "the parser accepts but the schema refuses {shown}"),
        Err(e) if expressible(e.reason()) => {
            assert!(
                !accepted,
                "the parser refuses ({e}) but the schema accepts {shown}"
            )
        }
        Err(_) => {}
    }
}

#[test]
fn the_committed_schema_is_the_generated_one() {
    let now = generated();
    if std::env::var_os("XPB_BLESS").is_some() {
        std::fs::write(SCHEMA_PATH, &now).expect("write docs/event.schema.json");
        return;
    }
    assert!(
        COMMITTED == now,
        "docs/event.schema.json differs from the parser's field table: run \
         `XPB_BLESS=1 cargo test --lib the_committed_schema` and commit the file"
    );
}

#[test]
fn every_example_agrees_with_the_parser() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut valid = 0;
    for entry in std::fs::read_dir(dir).expect("examples/") {
        let path = entry.expect("entry").path();
        let text = std::fs::read(&path).expect("read example");
        let ext = path.extension().and_then(|e| e.to_str());
        let bodies: Vec<&[u8]> = match ext {
            Some("jsonl") => text
                .split(|b| *b == b'\n')
                .filter(|l| !l.trim_ascii().is_empty())
                .collect(),
            Some("json") => vec![text.as_slice()],
            _ => continue,
        };
        for body in &bodies {
            let verdict = parse(body);
            assert_agrees(body, &verdict);
            // A single-event file is there to be copied: it must be valid.
            assert!(
                ext != Some("json") || verdict.is_ok(),
                "{}: {verdict:?}",
                path.display()
            );
            valid += usize::from(verdict.is_ok());
        }
    }
    assert!(valid >= 8, "the examples hold {valid} valid events");
}

/// A valid event holding every field; `with` replaces or removes (`None`) one of them.
fn every_field(name: &str, with: Option<&str>) -> String {
    let mut parts = Vec::new();
    for f in wire::all() {
        let value = match f.kind {
            Kind::Id { .. } => r#""id-1""#,
            Kind::Status => r#""approved""#,
            Kind::Timestamp => r#""2026-01-02T03:04:05Z""#,
            Kind::Integer => "7",
            Kind::Decimal => r#""1.50""#,
            Kind::Text { .. } => r#""text""#,
        };
        let value = if f.name == name { with } else { Some(value) };
        if let Some(v) = value {
            parts.push(format!(r#""{}":{v}"#, f.name));
        }
    }
    format!("{{{}}}", parts.join(","))
}

#[test]
fn each_field_of_the_table_is_read_by_the_parser_as_the_schema_says() {
    let full = every_field("", None);
    let event = parse(full.as_bytes()).expect("every field valid");
    assert_agrees(full.as_bytes(), &Ok(event.clone()));
    // Every field the parser keeps is in the table (a field added to the parser alone fails).
    let schema = wire::schema();
    for key in event.canonical_json().as_object().expect("object").keys() {
        assert!(
            key == "status_code" || schema["properties"].get(key).is_some(),
            "`{key}` is parsed but not in the schema"
        );
    }
    for f in wire::all() {
        let wrong = every_field(f.name, Some(r#"{"an":"object"}"#));
        let verdict = parse(wrong.as_bytes());
        assert_eq!(
            verdict.as_ref().map_err(Invalid::reason).err(),
            Some(Reason::WrongType),
            "{}",
            f.name
        );
        assert_agrees(wrong.as_bytes(), &verdict);
        let absent = every_field(f.name, None);
        let verdict = parse(absent.as_bytes());
        assert_eq!(verdict.is_err(), f.required, "{} absent", f.name);
        assert_agrees(absent.as_bytes(), &verdict);
        let null = every_field(f.name, Some("null"));
        let verdict = parse(null.as_bytes());
        assert_eq!(verdict.is_err(), f.required, "{} null", f.name);
        assert_agrees(null.as_bytes(), &verdict);
    }
}

#[test]
fn every_status_spelling_the_parser_knows_the_schema_knows() {
    let words = [
        "approved",
        "Confirmed",
        " PENDING ",
        "declined",
        "hold",
        "not_found",
        "1",
        "2",
        "3",
        "5",
    ];
    for word in words {
        let body = every_field("status", Some(&serde_json::json!(word).to_string()));
        assert_agrees(body.as_bytes(), &parse(body.as_bytes()));
        assert!(parse(body.as_bytes()).is_ok(), "{word}");
    }
    for raw in [
        "1",
        "2",
        "3",
        "5",
        "4",
        "0",
        "6",
        r#""4""#,
        r#""paid""#,
        r#""approved!""#,
        "true",
    ] {
        let body = every_field("status", Some(raw));
        assert_agrees(body.as_bytes(), &parse(body.as_bytes()));
    }
}

#[test]
fn every_reason_has_its_own_code() {
    let codes: std::collections::BTreeSet<&str> = Reason::ALL.iter().map(|r| r.code()).collect();
    assert_eq!(codes.len(), Reason::ALL.len());
    let cases: [(&[u8], &str); 9] = [
        (b"\xff", "not_utf8"),
        (b"{", "not_json"),
        (b"[1]", "not_object"),
        (br#"{"status":1}"#, "missing_field"),
        (br#"{"conversion_id":1}"#, "wrong_type"),
        (br#"{"conversion_id":"c","status":"paid"}"#, "bad_status"),
        (br#"{"conversion_id":"c","status":1,"updated_at":"today"}"#, "bad_timestamp"),
        (br#"{"conversion_id":" ","status":1}"#, "bad_text"),
        (
            br#"{"conversion_id":"c","status":1,"updated_at":"2026-01-02T03:04:05Z","offer_id":1,"affiliate_id":1,"payout":"1,5"}"#,
            "bad_number",
        ),
    ];
    for (body, want) in cases {
        let got = parse(body).expect_err("refused");
        assert_eq!(got.reason_code(), want, "{got}");
    }
    let big = parse_within(&[b' '; 11], 10).expect_err("too large");
    assert_eq!(big.reason_code(), "too_large");
    assert_eq!(big.0, "message is 11 bytes, over amqp.max_message_bytes (10)");
}
