//! Why a message is not a valid event: a readable text and a code from a small, fixed set.

/// Why a message is not a valid event. The text (field `.0`) is stored in
/// `rejected_messages.reason`; [`Invalid::reason_code`] is the bounded code for metric labels.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String, Reason);

impl Invalid {
    pub fn new(reason: Reason, text: impl Into<String>) -> Invalid {
        Invalid(text.into(), reason)
    }

    /// The kind of wrongness.
    pub fn reason(&self) -> Reason {
        self.1
    }

    /// The kind of wrongness as a metric label value: one of [`Reason::ALL`]'s codes, never
    /// free text.
    pub fn reason_code(&self) -> &'static str {
        self.1.code()
    }
}

/// The kinds of wrongness, one code each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Over `amqp.max_message_bytes`.
    TooLarge,
    NotUtf8,
    NotJson,
    /// Valid JSON, but not an object.
    NotObject,
    MissingField,
    /// A field of the wrong JSON type (an object where a string belongs, …).
    WrongType,
    /// A status that is none of the known words or codes.
    BadStatus,
    /// A timestamp that is not RFC 3339 with an offset.
    BadTimestamp,
    /// A number (decimal, integer, id) that does not parse or does not fit.
    BadNumber,
    /// A string that is too long, empty where it must not be, holds control characters or
    /// does not decode.
    BadText,
}

impl Reason {
    /// Every reason, so that a metric can show each code from the start.
    pub const ALL: [Reason; 10] = [
        Reason::TooLarge,
        Reason::NotUtf8,
        Reason::NotJson,
        Reason::NotObject,
        Reason::MissingField,
        Reason::WrongType,
        Reason::BadStatus,
        Reason::BadTimestamp,
        Reason::BadNumber,
        Reason::BadText,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Reason::TooLarge => "too_large",
            Reason::NotUtf8 => "not_utf8",
            Reason::NotJson => "not_json",
            Reason::NotObject => "not_object",
            Reason::MissingField => "missing_field",
            Reason::WrongType => "wrong_type",
            Reason::BadStatus => "bad_status",
            Reason::BadTimestamp => "bad_timestamp",
            Reason::BadNumber => "bad_number",
            Reason::BadText => "bad_text",
        }
    }
}

/// The size check intake applies before parsing, with its reason.
pub fn check_size(len: usize, max: usize) -> Result<(), Invalid> {
    if len > max {
        return Err(Invalid::new(
            Reason::TooLarge,
            format!("message is {len} bytes, over amqp.max_message_bytes ({max})"),
        ));
    }
    Ok(())
}
