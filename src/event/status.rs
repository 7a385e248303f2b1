//! A conversion status: the words and Affise codes an event may carry.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A conversion status. `confirmed` is an alias of `Approved`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Approved,
    Pending,
    Declined,
    Hold,
    NotFound,
}

impl Status {
    /// Every status, in the order forms list them.
    pub const ALL: [Status; 5] = [
        Status::Approved,
        Status::Pending,
        Status::Declined,
        Status::Hold,
        Status::NotFound,
    ];

    /// The lower-case word stored and rendered by `{status_name}`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Approved => "approved",
            Status::Pending => "pending",
            Status::Declined => "declined",
            Status::Hold => "hold",
            Status::NotFound => "not_found",
        }
    }

    /// Affise's numeric code, rendered by `{status}`; `not_found` has none.
    pub fn code(self) -> Option<u8> {
        match self {
            Status::Approved => Some(1),
            Status::Pending => Some(2),
            Status::Declined => Some(3),
            Status::Hold => Some(5),
            Status::NotFound => None,
        }
    }

    /// Statuses that are announced to receivers (the others only advance the order).
    pub fn is_announced(self) -> bool {
        matches!(self, Status::Approved | Status::Pending | Status::Declined)
    }

    /// Parses the word or code, case-insensitively, with the message format's aliases.
    pub fn parse(text: &str) -> Option<Status> {
        match text.trim().to_ascii_lowercase().as_str() {
            "approved" | "confirmed" | "1" => Some(Status::Approved),
            "pending" | "2" => Some(Status::Pending),
            "declined" | "3" => Some(Status::Declined),
            "hold" | "5" => Some(Status::Hold),
            "not_found" => Some(Status::NotFound),
            _ => None,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
