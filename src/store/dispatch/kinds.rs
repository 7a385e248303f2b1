//! The delivery states and HTTP methods as types; the database holds their text.

/// A delivery's state, as the `deliveries.state` column holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Its next attempt is due at `next_attempt_at`.
    Pending,
    Delivered,
    Failed,
    /// A newer announced event to the same URL took its place.
    Superseded,
    /// Its URL was disabled or removed.
    Cancelled,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 5] = [
        DeliveryState::Pending,
        DeliveryState::Delivered,
        DeliveryState::Failed,
        DeliveryState::Superseded,
        DeliveryState::Cancelled,
    ];

    /// The state of the column's text, if it is one.
    pub fn parse(text: &str) -> Option<DeliveryState> {
        DeliveryState::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
            DeliveryState::Superseded => "superseded",
            DeliveryState::Cancelled => "cancelled",
        }
    }
}

/// The HTTP method of a URL: one type, the one URLs are validated with.
pub use crate::url_spec::Method;

#[cfg(test)]
mod tests {
    use super::{DeliveryState, Method};

    #[test]
    fn states_and_methods_read_as_the_columns_hold_them() {
        use DeliveryState::*;
        let states = [Pending, Delivered, Failed, Superseded, Cancelled].map(DeliveryState::as_str);
        assert_eq!(
            states,
            ["pending", "delivered", "failed", "superseded", "cancelled"]
        );
        assert_eq!(Method::from_stored("POST"), Method::Post);
        assert_eq!(Method::from_stored("GET").as_str(), "GET");
        assert_eq!(Method::Post.to_reqwest(), reqwest::Method::POST);
    }
}
