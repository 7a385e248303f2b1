//! URL and body templates with Affise-style `{macro}`s: parse, validate, render.
//!
//! Pure. A template is parsed once into literal and macro segments; rendering escapes each
//! value for where it lands (URL, JSON string, form field), so no value can change the
//! template's structure.

use std::borrow::Cow;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::event::Event;

mod nearest;
mod sources;

pub use sources::known_names;
use sources::{Source, lookup, value};

/// Everything but RFC 3986's unreserved characters is percent-encoded in a URL value.
const URL_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Why a template is refused. Every URL or template it quotes is masked (its secrets, like
/// `token=` values and a password, are `***`): the text reaches `attempts.error` and the logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "unknown macro {{{name}}}; {}",
        nearest::hint(nearest, "no known macro is close (the list is in docs/macros.md)")
    )]
    UnknownMacro {
        name: String,
        /// The known names nearest to it.
        nearest: Vec<&'static str>,
    },
    #[error(
        "{{{found}}} is not a macro: macro names are lower-case; {}",
        nearest::hint(nearest, "")
    )]
    WrongCase {
        found: String,
        nearest: Vec<&'static str>,
    },
    #[error("{{{found} is not closed; {}", nearest::hint(nearest, ""))]
    Unclosed {
        found: String,
        nearest: Vec<&'static str>,
    },
    #[error("macros may stand in the path, query and fragment only, not in the scheme or host: {0}")]
    MacroInAuthority(String),
    #[error("not a valid http(s) URL: {0}")]
    BadUrl(String),
    #[error(
        "the body template is not valid JSON with sample values ({0}); macros must stand inside JSON strings"
    )]
    BadJsonBody(String),
    #[error("the values would change the URL's path (a value of . or .. forms a dot segment): {0}")]
    PathChanged(String),
}

/// Why a header value template is refused; the value itself is not shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the value holds an unknown macro, a macro name not in lower case, or an unclosed one \
     (the value is not shown); {hint}"
)]
pub struct HeaderValueError {
    hint: String,
}

/// A URL for an error message, secrets masked. Text that does not parse as a URL cannot be
/// told apart into parts, so none of it is shown.
fn shown(url: &str) -> String {
    if url::Url::parse(url).is_ok() {
        crate::mask::mask_url(url)
    } else {
        "(the text is not shown: it does not parse as a URL)".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Lit(String),
    Macro(Source),
}

/// How a value is escaped where it lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    Url,
    Json,
    Form,
    /// A request header's value: every control character (CR and LF among them) is
    /// percent-encoded as its UTF-8 bytes, so no value can end the header or add one.
    Header,
}

impl Escape {
    /// The escape of a POST body of a stored `content_type` (`form`, else JSON).
    pub fn for_content_type(content_type: &str) -> Escape {
        if content_type == "form" {
            Escape::Form
        } else {
            Escape::Json
        }
    }

    /// The `Content-Type` header of a body escaped so.
    pub fn mime(self) -> &'static str {
        match self {
            Escape::Form => "application/x-www-form-urlencoded",
            Escape::Json | Escape::Url | Escape::Header => "application/json",
        }
    }
}

/// A parsed template. Any brace that is not `{` + `[a-z0-9_]+` + `}` is literal text.
/// Its `Debug` shows the shape only: the literal text may hold a secret (a token in a URL or a
/// header value).
#[derive(Clone, PartialEq, Eq)]
pub struct Template {
    segments: Vec<Segment>,
    /// For a URL template: how many path segments it has, checked once by `parse_url`, so each
    /// render only compares against it.
    path_segments: Option<usize>,
    /// For a URL template: its literal `host:port`, the key of the per-host limit.
    host_port: String,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let macros = self
            .segments
            .iter()
            .filter(|s| matches!(s, Segment::Macro(_)))
            .count();
        f.debug_struct("Template")
            .field("segments", &self.segments.len())
            .field("macros", &macros)
            .finish_non_exhaustive()
    }
}

impl Template {
    /// Parses a template. A brace group that is a macro name in another case (`{ClickID}`) or
    /// a macro name left unclosed (`{status`) is refused, since it was meant as a macro and
    /// would otherwise go out as literal text; any other brace is literal text.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut segments = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            lit.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let word_len = after
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count();
            let word = &after[..word_len];
            let closed = after.as_bytes().get(word_len) == Some(&b'}');
            if word_len > 0 && closed && !word.bytes().any(|b| b.is_ascii_uppercase()) {
                let source = lookup(word).ok_or_else(|| TemplateError::UnknownMacro {
                    name: word.to_owned(),
                    nearest: nearest::nearest(word, known_names()),
                })?;
                if !lit.is_empty() {
                    segments.push(Segment::Lit(std::mem::take(&mut lit)));
                }
                segments.push(Segment::Macro(source));
                rest = &after[word_len + 1..];
                continue;
            }
            if word_len > 0 && lookup(&word.to_ascii_lowercase()).is_some() {
                let found = word.to_owned();
                let nearest = nearest::nearest(word, known_names());
                return Err(if closed {
                    TemplateError::WrongCase { found, nearest }
                } else {
                    TemplateError::Unclosed { found, nearest }
                });
            }
            lit.push('{');
            rest = after;
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            segments.push(Segment::Lit(lit));
        }
        Ok(Template {
            segments,
            path_segments: None,
            host_port: String::new(),
        })
    }

    /// Parses a URL template and checks that no macro can reach the scheme or host, and that
    /// it renders to an http(s) URL.
    pub fn parse_url(text: &str) -> Result<Template, TemplateError> {
        let mut template = Template::parse(text)?;
        let prefix = match template.segments.first() {
            Some(Segment::Lit(l)) => l.as_str(),
            _ => "",
        };
        let has_macro = template.segments.iter().any(|s| matches!(s, Segment::Macro(_)));
        if has_macro {
            // The literal text before the first macro must hold the whole scheme and authority.
            let authority_ends = prefix
                .find("://")
                .and_then(|i| prefix[i + 3..].find(['/', '?', '#']))
                .is_some();
            if !authority_ends {
                return Err(TemplateError::MacroInAuthority(shown(text)));
            }
        }
        let sample = template.render_with(Escape::Url, |_| Cow::Borrowed("x"));
        // The parser's reason alone: the text did not parse, so its secrets cannot be masked.
        let url = url::Url::parse(&sample).map_err(|e| TemplateError::BadUrl(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(TemplateError::BadUrl(format!(
                "scheme must be http or https with a host: {}",
                shown(text)
            )));
        }
        check_host(&url)?;
        // URL parsers skip any run of slashes after `http:`, so in `http:///{sub1}` the macro is
        // the host: the scheme and authority must come out the same whatever the values.
        let other = template.render_with(Escape::Url, |_| Cow::Borrowed("y"));
        let before_path = ..url::Position::BeforePath;
        if !url::Url::parse(&other).is_ok_and(|o| o[before_path] == url[before_path]) {
            return Err(TemplateError::MacroInAuthority(shown(text)));
        }
        template.path_segments = path_segment_count(&sample);
        template.host_port = format!(
            "{}:{}",
            url.host_str().unwrap_or_default(),
            url.port_or_known_default().unwrap_or(0)
        );
        Ok(template)
    }

    /// A URL template's `host:port` (the same for every rendering: `parse_url` checks it).
    pub fn host_port(&self) -> &str {
        &self.host_port
    }

    /// Parses a request header's value template. Its error never quotes the value (it may be
    /// a secret): it says what is wrong and offers the nearest macro names.
    pub fn parse_header_value(text: &str) -> Result<Template, HeaderValueError> {
        Template::parse(text).map_err(|e| HeaderValueError {
            hint: match e {
                TemplateError::UnknownMacro { nearest, .. }
                | TemplateError::WrongCase { nearest, .. }
                | TemplateError::Unclosed { nearest, .. } => {
                    nearest::hint(&nearest, "see the list of macros")
                }
                _ => String::new(),
            },
        })
    }

    /// Parses a POST body template; a JSON one must stay valid JSON for any value.
    pub fn parse_body(text: &str, escape: Escape) -> Result<Template, TemplateError> {
        let template = Template::parse(text)?;
        if escape == Escape::Json {
            for sample in ["x", "", "a\"b\\c"] {
                let body = template.render_with(Escape::Json, |_| Cow::Borrowed(sample));
                serde_json::from_str::<serde_json::Value>(&body)
                    .map_err(|e| TemplateError::BadJsonBody(e.to_string()))?;
            }
        }
        Ok(template)
    }

    /// Renders with the event's values; `rand` is the per-send random value.
    pub fn render(&self, event: &Event, escape: Escape, rand: &str) -> String {
        self.render_with(escape, |source| value(source, event, rand))
    }

    /// Renders a URL template and checks that the values left its structure alone. Percent-
    /// encoding keeps them from adding a host, segments or parameters, but a value that is a whole
    /// path segment of `.` or `..` would still be taken as a dot segment (even as `%2e`), so
    /// such a URL is refused rather than sent somewhere else.
    pub fn render_url(&self, event: &Event, rand: &str) -> Result<String, TemplateError> {
        let rendered = self.render(event, Escape::Url, rand);
        // Scheme and host are literal (checked by `parse_url`); only the path can move.
        let segments = path_segment_count(&rendered);
        if self.path_segments.is_none() || segments != self.path_segments {
            return Err(TemplateError::PathChanged(shown(&rendered)));
        }
        Ok(rendered)
    }

    fn render_with<'a>(&self, escape: Escape, mut value: impl FnMut(Source) -> Cow<'a, str>) -> String {
        let mut out = String::with_capacity(128);
        for segment in &self.segments {
            match segment {
                Segment::Lit(l) => out.push_str(l),
                Segment::Macro(source) => escape_into(&mut out, &value(*source), escape),
            }
        }
        out
    }
}

/// The URL parser takes names such as `{` as a host, but no HTTP request can be built to
/// one: a host name is letters, digits, `-`, `.` and `_` (an IDN arrives here as punycode).
fn check_host(url: &url::Url) -> Result<(), TemplateError> {
    match url.host() {
        Some(url::Host::Domain(host))
            if !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')) =>
        {
            Err(TemplateError::BadUrl(format!(
                "`{host}` is not a host name (letters, digits, `-`, `.` and `_` only)"
            )))
        }
        _ => Ok(()),
    }
}

/// How many path segments a URL has, counted with one more segment after its path: a `.` or `..`
/// last segment leaves the plain count alone (`/a/.` is `/a/`), one in the middle does not.
fn path_segment_count(url: &str) -> Option<usize> {
    // The parser trims spaces and controls at the ends; a value cannot hold `?` or `#` unescaped.
    let url = url.trim_matches(|c: char| c <= ' ');
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let probe = format!("{}/-{}", &url[..end], &url[end..]);
    url::Url::parse(&probe).ok()?.path_segments().map(|s| s.count())
}

fn escape_into(out: &mut String, value: &str, escape: Escape) {
    match escape {
        Escape::Url => out.extend(utf8_percent_encode(value, URL_VALUE)),
        Escape::Form => out.extend(url::form_urlencoded::byte_serialize(value.as_bytes())),
        Escape::Header => {
            for c in value.chars() {
                if c.is_control() {
                    let mut buf = [0; 4];
                    out.extend(utf8_percent_encode(c.encode_utf8(&mut buf), NON_ALPHANUMERIC));
                } else {
                    out.push(c);
                }
            }
        }
        Escape::Json => {
            let quoted = serde_json::Value::String(value.to_owned()).to_string();
            out.push_str(&quoted[1..quoted.len() - 1]);
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod props;
