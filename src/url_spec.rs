//! A cross-postback URL as an operator gives it, checked before it is stored (pure). The CLI,
//! the bench and the coming HTTP API share this one check: the templates parse, a body goes
//! with POST only, the statuses are announced ones, and the offer id and goal are held to the
//! rules of an event's fields (no control characters, ids of 1 to 128 characters).

use std::time::Duration;

use crate::event::Status;
use crate::macros::{Escape, Template, TemplateError};

pub mod headers;
pub mod rate;

pub use headers::{Header, HeaderError};
pub use rate::{RateError, RateLimit};

/// Most characters of an offer id, as in an event.
pub const MAX_ID_CHARS: usize = 128;
/// Most characters of a goal, as in an event.
const MAX_GOAL_CHARS: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    /// As stored in `cross_postback_urls.method`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }

    /// The method of a stored row (`GET` unless `POST`; the column allows only the two).
    pub fn from_stored(text: &str) -> Method {
        if text == "POST" { Method::Post } else { Method::Get }
    }

    pub fn to_reqwest(self) -> reqwest::Method {
        match self {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
        }
    }
}

/// How a POST body's values are escaped, and its MIME type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    Json,
    Form,
}

impl ContentType {
    /// As stored in `cross_postback_urls.content_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ContentType::Json => "json",
            ContentType::Form => "form",
        }
    }

    /// The content type of a stored row (`json` unless `form`).
    pub fn from_stored(text: &str) -> ContentType {
        if text == "form" {
            ContentType::Form
        } else {
            ContentType::Json
        }
    }
}

/// A URL as given, unchecked.
#[derive(Debug, Clone)]
pub struct UrlSpec {
    pub offer_id: String,
    pub url: String,
    pub method: Method,
    pub goal: Option<String>,
    /// `None`: all announced statuses.
    pub statuses: Option<Vec<String>>,
    pub body: Option<String>,
    pub content_type: ContentType,
    pub follow_redirects: bool,
    /// Request headers of this URL's own, in order; values are templates.
    pub headers: Vec<Header>,
    /// This URL's request timeout; `None`: the global `delivery.timeout`.
    pub timeout: Option<Duration>,
}

impl UrlSpec {
    /// A GET of `url` for `offer_id` with every other setting at its default: no filters, no
    /// body, no headers, the global timeout, redirects not followed.
    pub fn get(offer_id: &str, url: &str) -> UrlSpec {
        UrlSpec {
            offer_id: offer_id.to_owned(),
            url: url.to_owned(),
            method: Method::Get,
            goal: None,
            statuses: None,
            body: None,
            content_type: ContentType::Json,
            follow_redirects: false,
            headers: vec![],
            timeout: None,
        }
    }
}

/// Why a URL is refused. The text names the field; a template's own error is the source.
#[derive(Debug, thiserror::Error)]
pub enum UrlSpecError {
    #[error("offer id {0}")]
    OfferId(&'static str),
    #[error("goal {0}")]
    Goal(&'static str),
    #[error("url template contains control characters")]
    UrlControl,
    #[error("url template")]
    Url(#[source] TemplateError),
    #[error("body template contains control characters (other than tab and line breaks)")]
    BodyControl,
    #[error("body template")]
    Body(#[source] TemplateError),
    #[error("a body needs the POST method")]
    BodyWithoutPost,
    #[error("statuses: {0:?} is not one of approved, declined, pending")]
    Status(String),
    #[error("statuses: name at least one of approved, declined, pending")]
    NoStatus,
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error("timeout must be at least 1 ms")]
    TimeoutZero,
    #[error("timeout {given_ms} ms is above the global delivery.timeout ({max_ms} ms)")]
    TimeoutAbove { given_ms: u128, max_ms: u128 },
}

/// A checked URL, ready to store. Only [`validate`] makes one.
#[derive(Debug, Clone)]
pub struct NewUrl {
    offer_id: String,
    url: String,
    method: Method,
    goal: Option<String>,
    statuses: Vec<Status>,
    body: Option<String>,
    content_type: ContentType,
    follow_redirects: bool,
    headers: Vec<Header>,
    timeout: Option<Duration>,
}

impl NewUrl {
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
    pub fn offer_id(&self) -> &str {
        &self.offer_id
    }
    pub fn url(&self) -> &str {
        &self.url
    }
    pub fn method(&self) -> Method {
        self.method
    }
    pub fn goal(&self) -> Option<&str> {
        self.goal.as_deref()
    }
    pub fn statuses(&self) -> &[Status] {
        &self.statuses
    }
    pub fn body(&self) -> Option<&str> {
        self.body.as_deref()
    }
    pub fn content_type(&self) -> ContentType {
        self.content_type
    }
    pub fn follow_redirects(&self) -> bool {
        self.follow_redirects
    }
}

/// Checks a URL as given; the first problem found is the error. `max_timeout` is the global
/// `delivery.timeout`, the bound of a URL's own timeout.
pub fn validate(spec: UrlSpec, max_timeout: Duration) -> Result<NewUrl, UrlSpecError> {
    check_text(&spec.offer_id, MAX_ID_CHARS).map_err(UrlSpecError::OfferId)?;
    if let Some(goal) = &spec.goal {
        check_text(goal, MAX_GOAL_CHARS).map_err(UrlSpecError::Goal)?;
    }
    // A URL parser drops tabs and line breaks, so what is stored would not be what is sent.
    if spec.url.chars().any(char::is_control) {
        return Err(UrlSpecError::UrlControl);
    }
    Template::parse_url(&spec.url).map_err(UrlSpecError::Url)?;
    if let Some(body) = &spec.body {
        if spec.method != Method::Post {
            return Err(UrlSpecError::BodyWithoutPost);
        }
        if body
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
        {
            return Err(UrlSpecError::BodyControl);
        }
        let escape = Escape::for_content_type(spec.content_type.as_str());
        Template::parse_body(body, escape).map_err(UrlSpecError::Body)?;
    }
    headers::check(&spec.headers)?;
    if let Some(t) = spec.timeout {
        if t.as_millis() == 0 {
            return Err(UrlSpecError::TimeoutZero);
        }
        if t > max_timeout {
            return Err(UrlSpecError::TimeoutAbove {
                given_ms: t.as_millis(),
                max_ms: max_timeout.as_millis(),
            });
        }
    }
    let statuses = match spec.statuses {
        None => vec![Status::Approved, Status::Declined, Status::Pending],
        Some(list) => statuses(&list)?,
    };
    Ok(NewUrl {
        offer_id: spec.offer_id,
        url: spec.url,
        method: spec.method,
        goal: spec.goal,
        statuses,
        body: spec.body,
        content_type: spec.content_type,
        follow_redirects: spec.follow_redirects,
        headers: spec.headers,
        timeout: spec.timeout,
    })
}

fn statuses(list: &[String]) -> Result<Vec<Status>, UrlSpecError> {
    let mut out = Vec::new();
    for s in list {
        match Status::parse(s) {
            Some(st) if st.is_announced() => {
                if !out.contains(&st) {
                    out.push(st);
                }
            }
            _ => return Err(UrlSpecError::Status(s.clone())),
        }
    }
    if out.is_empty() {
        return Err(UrlSpecError::NoStatus);
    }
    Ok(out)
}

/// An id or a goal: not blank, at most `max` characters, no control characters (a goal ends
/// up in logs, tables and the statistics; a line break there would forge a line).
fn check_text(value: &str, max: usize) -> Result<(), &'static str> {
    if value.trim().is_empty() {
        return Err("must not be empty");
    }
    if value.chars().count() > max {
        return Err(if max == MAX_ID_CHARS {
            "is longer than 128 characters"
        } else {
            "is longer than 4096 characters"
        });
    }
    if value.chars().any(char::is_control) {
        return Err("contains control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> UrlSpec {
        UrlSpec::get("42", "https://partner.test/pb?c={clickid}")
    }

    const MAX: Duration = Duration::from_secs(10);

    fn refused(edit: impl FnOnce(&mut UrlSpec)) -> String {
        let mut s = spec();
        edit(&mut s);
        match validate(s, MAX) {
            Ok(u) => panic!("should be refused: {u:?}"),
            Err(e) => crate::report::one_line(&e),
        }
    }

    #[test]
    fn a_good_url_is_kept_as_given() {
        let mut s = spec();
        s.statuses = Some(vec!["Approved".into(), "confirmed".into(), "pending".into()]);
        s.goal = Some("Sale".into());
        s.timeout = Some(MAX);
        s.headers = vec![Header {
            name: "Authorization".into(),
            value: "Bearer {sub1}".into(),
        }];
        let u = validate(s, MAX).expect("valid");
        assert_eq!(u.timeout(), Some(MAX), "the bound itself is allowed");
        assert_eq!(u.headers()[0].value, "Bearer {sub1}");
        assert_eq!(u.statuses(), [Status::Approved, Status::Pending]);
        assert_eq!(u.goal(), Some("Sale"));
        assert_eq!(u.method().as_str(), "GET");
    }

    #[test]
    fn refusals_name_the_field() {
        let long = "x".repeat(129);
        type Edit = Box<dyn FnOnce(&mut UrlSpec)>;
        let cases: Vec<(Edit, &str)> = vec![
            (
                Box::new(|s| s.offer_id = String::new()),
                "offer id must not be empty",
            ),
            (
                Box::new(|s| s.offer_id = " ".into()),
                "offer id must not be empty",
            ),
            (
                Box::new(move |s| s.offer_id = long),
                "offer id is longer than 128",
            ),
            (
                Box::new(|s| s.offer_id = "4\u{1b}2".into()),
                "offer id contains control",
            ),
            (
                Box::new(|s| s.goal = Some("sale\r\nX".into())),
                "goal contains control",
            ),
            (
                Box::new(|s| s.goal = Some("a\tb".into())),
                "goal contains control",
            ),
            (
                Box::new(|s| s.goal = Some(String::new())),
                "goal must not be empty",
            ),
            (
                Box::new(|s| s.url = "https://x.test/{clikid}".into()),
                "url template: unknown macro",
            ),
            (
                Box::new(|s| s.body = Some("{}".into())),
                "a body needs the POST method",
            ),
            (
                Box::new(|s| {
                    s.method = Method::Post;
                    s.body = Some("{\"a\": {sum}}".into());
                }),
                "body template: the body template is not valid JSON",
            ),
            (
                Box::new(|s| s.statuses = Some(vec!["hold".into()])),
                "statuses: \"hold\"",
            ),
            (Box::new(|s| s.statuses = Some(vec![])), "name at least one"),
            (
                Box::new(|s| s.timeout = Some(Duration::from_millis(10_001))),
                "timeout 10001 ms is above the global delivery.timeout (10000 ms)",
            ),
            (
                Box::new(|s| s.timeout = Some(Duration::ZERO)),
                "timeout must be at least 1 ms",
            ),
            (
                Box::new(|s| {
                    s.headers = vec![Header {
                        name: "Host".into(),
                        value: "x".into(),
                    }]
                }),
                "header Host is set by",
            ),
        ];
        for (edit, want) in cases {
            let msg = refused(edit);
            assert!(msg.contains(want), "{msg:?} should contain {want:?}");
        }
    }
}
