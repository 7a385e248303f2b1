//! A URL's own request headers, checked before they are stored. A header's value may be a
//! secret (a bearer token), so no error here quotes a value, and a name is quoted only once it
//! is known to be a valid HTTP token.

use std::fmt;

use crate::macros::{HeaderValueError, Template};

/// Most headers of one URL.
pub const MAX_HEADERS: usize = 32;
/// Most characters of one header value template.
const MAX_VALUE_CHARS: usize = 4096;

/// Names the sender sets itself, hop-by-hop names, and names that would change how the
/// request is framed: none of them may be given.
const RESERVED: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "idempotency-key",
    "user-agent",
];

/// One header as given or stored: a name and a value template. Its `Debug` masks the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ***", self.name)
    }
}

/// Why a header is refused. No variant holds a value.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("header: write it as `Name: value` (the text is not shown)")]
    Format,
    #[error(
        "header name is not an HTTP token: letters, digits and !#$%&'*+-.^_`|~ only \
         (the text is not shown)"
    )]
    Name,
    #[error("header {0} is set by cross-postback itself (or is hop-by-hop) and cannot be given")]
    Reserved(String),
    #[error("header {0} is given twice")]
    Repeated(String),
    #[error("header {0}: the value contains control characters (the value is not shown)")]
    Control(String),
    #[error("header {0}: the value is empty")]
    Empty(String),
    #[error("header {0}: the value is longer than 4096 characters")]
    TooLong(String),
    #[error("header {name}")]
    Template {
        name: String,
        #[source]
        source: HeaderValueError,
    },
    #[error("at most {MAX_HEADERS} headers")]
    TooMany,
}

/// Splits `Name: value` as given on a command line (the value's surrounding blanks dropped).
pub fn parse_arg(text: &str) -> Result<Header, HeaderError> {
    let (name, value) = text.split_once(':').ok_or(HeaderError::Format)?;
    Ok(Header {
        name: name.trim().to_owned(),
        value: value.trim_matches([' ', '\t']).to_owned(),
    })
}

/// Checks a URL's headers: token names, none reserved or repeated (case-insensitively), values
/// without control characters whose macros parse.
pub fn check(headers: &[Header]) -> Result<(), HeaderError> {
    if headers.len() > MAX_HEADERS {
        return Err(HeaderError::TooMany);
    }
    let mut seen: Vec<String> = Vec::with_capacity(headers.len());
    for h in headers {
        if h.name.is_empty() || !h.name.bytes().all(is_tchar) {
            return Err(HeaderError::Name);
        }
        let lower = h.name.to_ascii_lowercase();
        if RESERVED.contains(&lower.as_str()) {
            return Err(HeaderError::Reserved(h.name.clone()));
        }
        if seen.contains(&lower) {
            return Err(HeaderError::Repeated(h.name.clone()));
        }
        seen.push(lower);
        // Tab too: a value's blanks are spaces, so what is stored is what is sent.
        if h.value.chars().any(char::is_control) {
            return Err(HeaderError::Control(h.name.clone()));
        }
        if h.value.trim().is_empty() {
            return Err(HeaderError::Empty(h.name.clone()));
        }
        if h.value.chars().count() > MAX_VALUE_CHARS {
            return Err(HeaderError::TooLong(h.name.clone()));
        }
        Template::parse_header_value(&h.value).map_err(|source| HeaderError::Template {
            name: h.name.clone(),
            source,
        })?;
    }
    Ok(())
}

/// An HTTP token character (RFC 9110 `tchar`).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str, value: &str) -> Header {
        Header {
            name: name.into(),
            value: value.into(),
        }
    }

    fn refused(headers: &[Header]) -> String {
        match check(headers) {
            Ok(()) => panic!("should be refused: {headers:?}"),
            Err(e) => crate::report::one_line(&e),
        }
    }

    #[test]
    fn good_headers_pass_and_the_arg_splits_at_the_first_colon() {
        let a = parse_arg("Authorization:  Bearer s3cr3t:x ").expect("splits");
        assert_eq!(a, h("Authorization", "Bearer s3cr3t:x"));
        check(&[a, h("X-Click", "{clickid}"), h("X-Sig", "{sum}-{status}")]).expect("valid");
    }

    #[test]
    fn refusals_never_show_the_value() {
        let secret = "s3cr3t";
        let cases: Vec<(Vec<Header>, &str)> = vec![
            (vec![h("X-A", "s3cr3t\r\nX-Evil: 1")], "control characters"),
            (vec![h("X-A", "s3cr3t\n")], "control characters"),
            (vec![h("X-A", "s3cr3t\t")], "control characters"),
            (vec![h("X-A", "s3cr3t {clikid}")], "did you mean `{clickid}`"),
            (vec![h("X-A", "s3cr3t {ClickID}")], "not in lower case"),
            (vec![h("X-A", "s3cr3t {status")], "unclosed"),
            (vec![h("Bad Name s3cr3t", "v")], "not an HTTP token"),
            (vec![h("", "s3cr3t")], "not an HTTP token"),
            (vec![h("host", "s3cr3t")], "header host is set by"),
            (vec![h("Idempotency-Key", "s3cr3t")], "is set by"),
            (vec![h("Content-Length", "s3cr3t")], "is set by"),
            (vec![h("Transfer-Encoding", "s3cr3t")], "is set by"),
            (vec![h("Connection", "s3cr3t")], "is set by"),
            (vec![h("User-Agent", "s3cr3t")], "is set by"),
            (vec![h("X-A", "s3cr3t"), h("x-a", "s3cr3t")], "given twice"),
            (vec![h("X-A", " ")], "empty"),
            (vec![h("X-A", &"s3cr3t".repeat(700))], "longer than 4096"),
            (
                (0..33).map(|i| h(&format!("X-{i}"), secret)).collect(),
                "at most 32",
            ),
        ];
        for (headers, want) in cases {
            let msg = refused(&headers);
            assert!(msg.contains(want), "{msg:?} should contain {want:?}");
            assert!(!msg.contains(secret), "{msg:?} shows the value");
        }
        assert!(matches!(parse_arg("Bearer s3cr3t"), Err(HeaderError::Format)));
        assert!(!format!("{:?}", h("X-A", secret)).contains(secret));
    }
}
