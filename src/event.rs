//! The conversion-status event (message format v1): parse, validate, normalise.
//!
//! Pure: bytes in, an [`Event`] or a readable [`Invalid`] reason out. Decimals are read from
//! the raw JSON text so that `0.1` stays `0.1` (never a float on the way).

use std::collections::BTreeMap;

use chrono::{DateTime, SubsecRound, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

mod invalid;
mod status;
pub mod wire;

pub use status::Status;

pub use invalid::{Invalid, Reason, check_size};
pub use wire::TEXT_FIELDS;
use wire::{Field, Kind, MAX_ID_CHARS, MAX_TEXT_CHARS};

/// A valid, normalised event. This is also the form stored with each delivery, so that
/// every attempt renders from the same values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub conversion_id: String,
    pub status: Status,
    pub updated_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<i64>,
    pub offer_id: String,
    pub affiliate_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub click_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payout: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revenue: Option<Decimal>,
    /// The optional text fields of [`TEXT_FIELDS`] that the message carried.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

impl Event {
    /// The canonical fields as one flat JSON object: the default body of a POST without a
    /// body template. Decimals are strings, so they stay exact.
    pub fn canonical_json(&self) -> serde_json::Value {
        use serde_json::{Value, json};
        let mut map = serde_json::Map::new();
        map.insert("conversion_id".into(), json!(self.conversion_id));
        map.insert("status".into(), json!(self.status.as_str()));
        map.insert("status_code".into(), json!(self.status.code()));
        map.insert("updated_at".into(), json!(self.updated_at.to_rfc3339()));
        map.insert("offer_id".into(), json!(self.offer_id));
        map.insert("affiliate_id".into(), json!(self.affiliate_id));
        let optional = [
            ("sequence", self.sequence.map(|s| json!(s))),
            ("event_id", self.event_id.as_ref().map(|s| json!(s))),
            ("created_at", self.created_at.map(|t| json!(t.to_rfc3339()))),
            ("click_time", self.click_time.map(|t| json!(t.to_rfc3339()))),
            ("payout", self.payout.map(|d| json!(d.to_string()))),
            ("revenue", self.revenue.map(|d| json!(d.to_string()))),
        ];
        for (name, value) in optional {
            if let Some(v) = value {
                map.insert(name.into(), v);
            }
        }
        for (name, value) in &self.fields {
            map.insert(name.clone(), Value::String(value.clone()));
        }
        Value::Object(map)
    }

    /// An optional text field, `None` when absent.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

fn invalid(reason: Reason, msg: impl Into<String>) -> Invalid {
    Invalid::new(reason, msg)
}

/// The JSON kinds a raw value can have, told apart by its first byte.
enum Raw<'a> {
    Null,
    Str(String),
    Number(&'a str),
    Other(&'static str),
}

fn classify<'a>(name: &str, raw: &'a RawValue) -> Result<Raw<'a>, Invalid> {
    let text = raw.get();
    Ok(match text.as_bytes().first() {
        Some(b'"') => Raw::Str(serde_json::from_str(text).map_err(|e| {
            // The position would be within the value, not the body: name the field instead.
            let e = e.to_string();
            let what = e.split(" at line ").next().unwrap_or_default();
            invalid(
                Reason::BadText,
                format!("`{name}` is not a valid JSON string: {what}"),
            )
        })?),
        Some(b'n') => Raw::Null,
        Some(b't' | b'f') => Raw::Other("a boolean"),
        Some(b'{') => Raw::Other("an object"),
        Some(b'[') => Raw::Other("an array"),
        _ => Raw::Number(text),
    })
}

/// Parses and validates one message body of at most `max_bytes`, as intake does.
pub fn parse_within(body: &[u8], max_bytes: usize) -> Result<Event, Invalid> {
    check_size(body.len(), max_bytes)?;
    parse(body)
}

/// Parses and validates one message body.
pub fn parse(body: &[u8]) -> Result<Event, Invalid> {
    let text =
        std::str::from_utf8(body).map_err(|e| invalid(Reason::NotUtf8, format!("body is not UTF-8: {e}")))?;
    let map: BTreeMap<String, Box<RawValue>> = serde_json::from_str(text).map_err(|e| {
        if e.is_data() {
            invalid(Reason::NotObject, format!("body is not a JSON object: {e}"))
        } else {
            invalid(Reason::NotJson, format!("body is not valid JSON: {e}"))
        }
    })?;
    let mut fields = Fields { map };

    let conversion_id = fields.id(&wire::CONVERSION_ID)?;
    let status = fields.status()?;
    let updated_at = fields
        .timestamp(&wire::UPDATED_AT)?
        .ok_or_else(|| invalid(Reason::MissingField, "missing required field `updated_at`"))?;
    let offer_id = fields.id(&wire::OFFER_ID)?;
    let affiliate_id = fields.id(&wire::AFFILIATE_ID)?;
    let sequence = fields.integer(&wire::SEQUENCE)?;
    let event_id = fields.text(&wire::EVENT_ID)?;
    let created_at = fields.timestamp(&wire::CREATED_AT)?;
    let click_time = fields.timestamp(&wire::CLICK_TIME)?;
    let payout = fields.decimal(&wire::PAYOUT)?;
    let revenue = fields.decimal(&wire::REVENUE)?;
    let mut text_fields = BTreeMap::new();
    for name in TEXT_FIELDS {
        if let Some(v) = fields.text(&wire::text_field(name))? {
            text_fields.insert((*name).to_owned(), v);
        }
    }
    Ok(Event {
        conversion_id,
        status,
        updated_at,
        sequence,
        offer_id,
        affiliate_id,
        event_id,
        created_at,
        click_time,
        payout,
        revenue,
        fields: text_fields,
    })
}

struct Fields {
    map: BTreeMap<String, Box<RawValue>>,
}

impl Fields {
    fn get(&self, name: &str) -> Result<Option<Raw<'_>>, Invalid> {
        match self.map.get(name) {
            None => Ok(None),
            Some(raw) => match classify(name, raw)? {
                Raw::Null => Ok(None),
                other => Ok(Some(other)),
            },
        }
    }

    /// A required id: a string (or, when the field allows numbers, an integer), compared as
    /// text.
    fn id(&mut self, f: &Field) -> Result<String, Invalid> {
        let (name, numbers) = (f.name, matches!(f.kind, Kind::Id { numbers: true }));
        let value = match self.get(name)? {
            None => return Err(missing(name)),
            Some(Raw::Str(s)) => s,
            Some(Raw::Number(n)) if numbers => {
                if n.parse::<i128>().is_err() {
                    return Err(invalid(
                        Reason::BadNumber,
                        format!("`{name}` must be an integer or a string, got {n}"),
                    ));
                }
                n.to_owned()
            }
            Some(Raw::Number(_)) => return Err(wrong_type(format!("`{name}` must be a string"))),
            Some(Raw::Other(kind)) => {
                return Err(wrong_type(format!("`{name}` must be a string, got {kind}")));
            }
            Some(Raw::Null) => unreachable!("get() maps null to None"),
        };
        check_text(name, &value, MAX_ID_CHARS, false)?;
        if value.trim().is_empty() {
            return Err(invalid(Reason::BadText, format!("`{name}` must not be empty")));
        }
        Ok(value)
    }

    fn status(&mut self) -> Result<Status, Invalid> {
        let name = wire::STATUS.name;
        let text = match self.get(name)? {
            None => return Err(missing(name)),
            Some(Raw::Str(s)) => s,
            Some(Raw::Number(n)) => n.to_owned(),
            Some(Raw::Other(kind)) => {
                return Err(wrong_type(format!(
                    "`{name}` must be a string or an integer, got {kind}"
                )));
            }
            Some(Raw::Null) => unreachable!("get() maps null to None"),
        };
        Status::parse(&text).ok_or_else(|| {
            invalid(
                Reason::BadStatus,
                format!(
                    "unknown status {:?} (allowed: approved, confirmed, pending, declined, hold, \
                     not_found, or the codes 1, 2, 3, 5)",
                    truncate(&text, 40)
                ),
            )
        })
    }

    fn timestamp(&mut self, f: &Field) -> Result<Option<DateTime<Utc>>, Invalid> {
        let name = f.name;
        match self.get(name)? {
            None => Ok(None),
            Some(Raw::Str(s)) => parse_timestamp(&s).map(Some).map_err(|e| {
                invalid(
                    Reason::BadTimestamp,
                    format!(
                        "`{name}` is not an RFC 3339 timestamp with an offset ({e}): {:?}",
                        truncate(&s, 40)
                    ),
                )
            }),
            Some(_) => Err(wrong_type(format!(
                "`{name}` must be an RFC 3339 timestamp string"
            ))),
        }
    }

    fn integer(&mut self, f: &Field) -> Result<Option<i64>, Invalid> {
        let name = f.name;
        match self.get(name)? {
            None => Ok(None),
            Some(Raw::Number(n)) => n.parse::<i64>().map(Some).map_err(|_| {
                invalid(
                    Reason::BadNumber,
                    format!(
                        "`{name}` must be an integer that fits 64 bits, got {}",
                        truncate(n, 40)
                    ),
                )
            }),
            Some(_) => Err(wrong_type(format!("`{name}` must be an integer"))),
        }
    }

    fn decimal(&mut self, f: &Field) -> Result<Option<Decimal>, Invalid> {
        let name = f.name;
        let text = match self.get(name)? {
            None => return Ok(None),
            Some(Raw::Str(s)) if s.trim().is_empty() => return Ok(None),
            Some(Raw::Str(s)) => s,
            Some(Raw::Number(n)) => n.to_owned(),
            Some(Raw::Other(kind)) => {
                return Err(wrong_type(format!(
                    "`{name}` must be a decimal number, got {kind}"
                )));
            }
            Some(Raw::Null) => unreachable!("get() maps null to None"),
        };
        parse_decimal(&text).map(Some).ok_or_else(|| {
            invalid(
                Reason::BadNumber,
                format!("`{name}` is not a decimal number: {:?}", truncate(&text, 40)),
            )
        })
    }

    /// Free text; a number is kept as its text.
    fn text(&mut self, f: &Field) -> Result<Option<String>, Invalid> {
        let name = f.name;
        let line_breaks = matches!(f.kind, Kind::Text { line_breaks: true });
        let value = match self.get(name)? {
            None => return Ok(None),
            Some(Raw::Str(s)) => s,
            Some(Raw::Number(n)) => n.to_owned(),
            Some(Raw::Other(kind)) => {
                return Err(wrong_type(format!(
                    "`{name}` must be a string or a number, got {kind}"
                )));
            }
            Some(Raw::Null) => unreachable!("get() maps null to None"),
        };
        check_text(name, &value, MAX_TEXT_CHARS, line_breaks)?;
        Ok(Some(value))
    }
}

fn missing(name: &str) -> Invalid {
    invalid(Reason::MissingField, format!("missing required field `{name}`"))
}

fn wrong_type(text: String) -> Invalid {
    invalid(Reason::WrongType, text)
}

fn check_text(name: &str, value: &str, max: usize, allow_whitespace_controls: bool) -> Result<(), Invalid> {
    if value.chars().count() > max {
        return Err(invalid(
            Reason::BadText,
            format!("`{name}` is longer than {max} characters"),
        ));
    }
    let bad = value
        .chars()
        .any(|c| c.is_control() && !(allow_whitespace_controls && matches!(c, '\t' | '\n' | '\r')));
    if bad {
        return Err(invalid(
            Reason::BadText,
            format!("`{name}` contains control characters"),
        ));
    }
    Ok(())
}

/// RFC 3339 with a mandatory offset; `T`, `t` or a space between date and time; kept to the
/// microsecond (what Postgres stores).
pub fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    let mut owned;
    let mut s = text.trim();
    if s.len() > 10 && s.as_bytes()[10] == b' ' {
        owned = s.to_owned();
        owned.replace_range(10..11, "T");
        s = owned.as_str();
    }
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc).trunc_subsecs(6))
}

/// Exact decimal from JSON number text or a string; refuses NaN, infinities and overflow.
pub fn parse_decimal(text: &str) -> Option<Decimal> {
    let t = text.trim();
    if t.is_empty() || t.len() > 64 {
        return None;
    }
    if t.contains(['e', 'E']) {
        return Decimal::from_scientific(t).ok();
    }
    t.parse::<Decimal>().ok()
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let cut: String = s.chars().take(max).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod props;

#[cfg(test)]
mod schema_tests;
