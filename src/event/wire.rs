//! The message's fields as one table: the parser reads each field by its entry here, and the
//! JSON Schema publishers validate with (`docs/event.schema.json`) is generated from the same
//! entries, so the two cannot say different things about a field.

use serde_json::{Value, json};

/// Most characters an id (`conversion_id`, `offer_id`, …) may have.
pub const MAX_ID_CHARS: usize = 128;
/// Most characters of a free-text field; longer values are refused, not cut.
pub const MAX_TEXT_CHARS: usize = 4096;

/// What a field holds, as the parser reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A non-blank string of at most [`MAX_ID_CHARS`] without control characters; with
    /// `numbers`, an integer too (kept as its text).
    Id { numbers: bool },
    /// A status word or code, see [`super::Status::parse`].
    Status,
    /// RFC 3339 with an offset, as a string.
    Timestamp,
    /// A JSON integer that fits 64 bits.
    Integer,
    /// An exact decimal: a JSON number or a string (a blank string counts as absent).
    Decimal,
    /// Free text of at most [`MAX_TEXT_CHARS`] (a number is kept as its text); tab, CR and
    /// LF are allowed only with `line_breaks`.
    Text { line_breaks: bool },
}

/// One field of the message. `null` counts as absent everywhere.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
    pub about: &'static str,
}

const fn field(name: &'static str, kind: Kind, required: bool, about: &'static str) -> Field {
    Field {
        name,
        kind,
        required,
        about,
    }
}

pub const CONVERSION_ID: Field = field(
    "conversion_id",
    Kind::Id { numbers: false },
    true,
    "The conversion's id: every event of one conversion carries the same.",
);
pub const STATUS: Field = field(
    "status",
    Kind::Status,
    true,
    "approved (alias confirmed), pending, declined, hold or not_found, any case; or the codes 1, 2, 3, 5.",
);
pub const UPDATED_AT: Field = field(
    "updated_at",
    Kind::Timestamp,
    true,
    "When the conversion took this status: orders its events when `sequence` is absent.",
);
pub const OFFER_ID: Field = field("offer_id", Kind::Id { numbers: true }, true, "The offer's id.");
pub const AFFILIATE_ID: Field = field(
    "affiliate_id",
    Kind::Id { numbers: true },
    true,
    "The affiliate's id.",
);
pub const SEQUENCE: Field = field(
    "sequence",
    Kind::Integer,
    false,
    "Orders the events of one conversion (higher is newer); preferred to updated_at.",
);
// It becomes the `Idempotency-Key` header, where a line break or any other control character
// makes a request no client can build: refused here, with the field named.
pub const EVENT_ID: Field = field(
    "event_id",
    Kind::Text { line_breaks: false },
    false,
    "The event's id, stable per status change: receivers get it in the Idempotency-Key header and can drop a copy by it.",
);
pub const CREATED_AT: Field = field(
    "created_at",
    Kind::Timestamp,
    false,
    "When the conversion was created.",
);
pub const CLICK_TIME: Field = field("click_time", Kind::Timestamp, false, "When the click happened.");
pub const PAYOUT: Field = field("payout", Kind::Decimal, false, "The affiliate's payout, exact.");
pub const REVENUE: Field = field(
    "revenue",
    Kind::Decimal,
    false,
    "The advertiser's revenue, exact.",
);

/// The fields with a meaning of their own, in the order the parser reads them.
pub const FIXED: [Field; 11] = [
    CONVERSION_ID,
    STATUS,
    UPDATED_AT,
    OFFER_ID,
    AFFILIATE_ID,
    SEQUENCE,
    EVENT_ID,
    CREATED_AT,
    CLICK_TIME,
    PAYOUT,
    REVENUE,
];

/// Optional text fields, each usable as a macro.
pub const TEXT_FIELDS: &[&str] = &[
    "offer_name",
    "affiliate_name",
    "advertiser_id",
    "goal",
    "currency",
    "comment",
    "click_id",
    "transaction_id",
    "ip",
    "geo",
    "city",
    "device_ua",
    "os",
    "referrer",
    "fbclid",
    "user_id",
    "promo_code",
    "ref_id",
    "os_id",
    "sub1",
    "sub2",
    "sub3",
    "sub4",
    "sub5",
    "sub6",
    "sub7",
    "sub8",
    "ext1",
    "ext2",
    "ext3",
    "custom_field1",
    "custom_field2",
    "custom_field3",
    "custom_field4",
    "custom_field5",
    "custom_field6",
    "custom_field7",
];

/// A free-text field of [`TEXT_FIELDS`].
pub const fn text_field(name: &'static str) -> Field {
    field(
        name,
        Kind::Text { line_breaks: true },
        false,
        "Optional text, usable as a macro.",
    )
}

/// Every field the parser reads: [`FIXED`], then [`TEXT_FIELDS`].
pub fn all() -> impl Iterator<Item = Field> {
    FIXED.into_iter().chain(TEXT_FIELDS.iter().map(|n| text_field(n)))
}

/// Characters `str::trim` removes (Unicode White_Space), spelled out so that every regex
/// dialect reads the class alike.
const WHITE: &str = r"\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// `char::is_control`: the C0 and C1 control characters.
const CONTROL: &str = r"\u0000-\u001f\u007f-\u009f";
/// Controls less tab, LF and CR.
const CONTROL_BUT_BREAKS: &str = r"\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f";

/// The JSON Schema (draft 2020-12) of one message.
pub fn schema() -> Value {
    let mut properties = serde_json::Map::new();
    for f in all() {
        let mut s = field_schema(f.kind, f.required);
        if let Value::Object(map) = &mut s {
            map.insert("description".into(), json!(f.about));
        }
        properties.insert(f.name.into(), s);
    }
    let required: Vec<&str> = all().filter(|f| f.required).map(|f| f.name).collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "cross-postback conversion event",
        "description": "One conversion-status event, one JSON object per message. Fields not listed here are ignored. Generated from the daemon's parser: `null` counts as absent; a schema cannot check everything the parser does (a 30 February, a decimal that overflows), so `cross-postback publish --check` is the final word.",
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": true,
    })
}

fn field_schema(kind: Kind, required: bool) -> Value {
    // `null` is absence: allowed where the field is optional.
    let types = |mut t: Vec<&'static str>| {
        if !required {
            t.push("null");
        }
        t
    };
    match kind {
        Kind::Id { numbers } => json!({
            "type": types(if numbers { vec!["string", "integer"] } else { vec!["string"] }),
            "maxLength": MAX_ID_CHARS,
            // Some character that is neither white space nor control, and no control at all.
            "pattern": format!("^[^{CONTROL}]*[^{WHITE}{CONTROL}][^{CONTROL}]*$"),
        }),
        Kind::Status => json!({
            "type": types(vec!["string", "integer"]),
            "pattern": status_pattern(),
            "minimum": 1,
            "maximum": 5,
            "not": { "const": 4 },
        }),
        Kind::Timestamp => json!({
            "type": types(vec!["string"]),
            "pattern": format!(
                "^[{WHITE}]*[0-9]{{4}}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])[{WHITE}]*$"
            ),
        }),
        Kind::Integer => json!({
            "type": types(vec!["integer"]),
            "minimum": i64::MIN,
            "maximum": i64::MAX,
        }),
        Kind::Decimal => json!({
            "type": types(vec!["string", "number"]),
            // The characters an exact decimal may be written with; a blank string is absence.
            "pattern": format!("^[{WHITE}]*[-+0-9._eE]*[{WHITE}]*$"),
        }),
        Kind::Text { line_breaks } => {
            let control = if line_breaks { CONTROL_BUT_BREAKS } else { CONTROL };
            json!({
                "type": types(vec!["string", "number"]),
                "maxLength": MAX_TEXT_CHARS,
                "pattern": format!("^[^{control}]*$"),
            })
        }
    }
}

/// The status words, any ASCII case, surrounded by white space or not; and the codes as text.
fn status_pattern() -> String {
    let words = [
        "approved",
        "confirmed",
        "pending",
        "declined",
        "hold",
        "not_found",
    ];
    let any_case: Vec<String> = words
        .iter()
        .map(|w| {
            w.chars()
                .map(|c| {
                    if c.is_ascii_alphabetic() {
                        format!("[{}{}]", c, c.to_ascii_uppercase())
                    } else {
                        c.to_string()
                    }
                })
                .collect()
        })
        .collect();
    format!("^[{WHITE}]*({}|1|2|3|5)[{WHITE}]*$", any_case.join("|"))
}
