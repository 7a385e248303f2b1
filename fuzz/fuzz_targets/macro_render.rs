//! Fuzzes the macro templates (`src/macros.rs`): parsing, URL rendering, JSON and form bodies.
//!
//! Input: one mode byte, then
//! - modes 0–2 (raw): template text, a 0xFF byte (never in UTF-8), then the bytes the event's
//!   values are drawn from; so a seed is a template as typed plus a few bytes;
//! - modes 3–5 (built): the template and the values are all drawn from the bytes, the template
//!   out of literal text and known macros, so the exact rendering is known in advance.
//!
//! The invariants of `src/macros/props.rs`, on any template and any values: no panic; a template
//! that `parse_url` accepts keeps its scheme, user info, host and port whatever the values, and
//! its path except that a value forming a `.` or `..` segment is refused (`PathChanged`); a
//! rendered URL parses; a JSON body that `parse_body` accepts stays valid JSON; a form body
//! keeps its fields. A built template must render to exactly the literals and the escaped values.
#![no_main]

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Result, Unstructured};
use chrono::{DateTime, Utc};
use cross_postback::event::{Event, Status, TEXT_FIELDS};
use cross_postback::macros::{self, Escape, Template, TemplateError};
use libfuzzer_sys::fuzz_target;
use percent_encoding::percent_decode_str;
use rust_decimal::Decimal;
use url::{Position, Url};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let _ = match mode % 6 {
        0..=2 => {
            let cut = rest.iter().position(|&b| b == 0xFF).unwrap_or(rest.len());
            let text = String::from_utf8_lossy(&rest[..cut]);
            let mut u = Unstructured::new(rest.get(cut + 1..).unwrap_or_default());
            let ev = event(&mut u);
            match mode % 6 {
                0 => ev.map(|(ev, rand)| raw_url(&text, &ev, &rand)),
                1 => ev.map(|(ev, rand)| raw_json(&text, &ev, &rand)),
                _ => ev.map(|(ev, rand)| raw_form(&text, &ev, &rand)),
            }
        }
        3 => built_url(&mut Unstructured::new(rest)),
        4 => built_json(&mut Unstructured::new(rest)),
        _ => built_form(&mut Unstructured::new(rest)),
    };
});

// ---- values ------------------------------------------------------------------------------

/// A value: mostly arbitrary text, sometimes one of the values known to be awkward.
fn text(u: &mut Unstructured) -> Result<String> {
    const AWKWARD: &[&str] = &[
        ".", "..", "", "...", "%2e", "%2E", ".%2e", "/", "\\", "?", "#", "&", "=", "+", "%", "@", ":", " ",
        "a b", "\"", "\\\"", "{sub1}", "é", "\u{0}", "\u{7f}", "\u{2028}", "\r\n",
    ];
    if u.ratio(1, 4)? {
        Ok((*u.choose(AWKWARD)?).to_owned())
    } else {
        u.arbitrary()
    }
}

/// A time that `event::parse` can produce: year 0 to 9999, give or take the offset.
fn time(u: &mut Unstructured) -> Result<DateTime<Utc>> {
    let secs = u.int_in_range(-62_167_305_600..=253_402_387_199i64)?;
    let micros = u.int_in_range(0..=999_999u32)?;
    Ok(DateTime::from_timestamp(secs, micros * 1000).unwrap_or_default())
}

fn decimal(u: &mut Unstructured) -> Result<Decimal> {
    let mantissa: i64 = u.arbitrary()?;
    let scale = u.int_in_range(0..=28u32)?;
    Ok(Decimal::new(mantissa, scale))
}

fn optional<T>(u: &mut Unstructured, f: impl FnOnce(&mut Unstructured) -> Result<T>) -> Result<Option<T>> {
    Ok(if u.arbitrary()? { Some(f(u)?) } else { None })
}

/// An event (built directly, so that values `event::parse` would refuse are tried too) and the
/// `{rand}` value.
fn event(u: &mut Unstructured) -> Result<(Event, String)> {
    let statuses = [
        Status::Approved,
        Status::Pending,
        Status::Declined,
        Status::Hold,
        Status::NotFound,
    ];
    let mut fields = BTreeMap::new();
    for name in TEXT_FIELDS {
        if u.ratio(1, 2)? {
            fields.insert((*name).to_owned(), text(u)?);
        }
    }
    let ev = Event {
        conversion_id: text(u)?,
        status: *u.choose(&statuses)?,
        updated_at: time(u)?,
        sequence: u.arbitrary()?,
        offer_id: text(u)?,
        affiliate_id: text(u)?,
        event_id: optional(u, text)?,
        created_at: optional(u, time)?,
        click_time: optional(u, time)?,
        payout: optional(u, decimal)?,
        revenue: optional(u, decimal)?,
        fields,
    };
    Ok((ev, text(u)?))
}

/// A plain event whose every macro renders non-empty and differently for `a` and `b`.
fn sample(b: bool) -> (Event, String) {
    let tag = if b { "yb" } else { "xa" };
    let at = |s: &str| s.parse::<DateTime<Utc>>().expect("sample time");
    let t = if b {
        at("2002-02-02T02:02:02Z")
    } else {
        at("2001-01-01T01:01:01Z")
    };
    let ev = Event {
        conversion_id: tag.into(),
        status: if b { Status::Pending } else { Status::Approved },
        updated_at: t,
        sequence: None,
        offer_id: tag.into(),
        affiliate_id: tag.into(),
        event_id: Some(tag.into()),
        created_at: Some(t),
        click_time: Some(t),
        payout: Some(Decimal::from(1 + i64::from(b))),
        revenue: Some(Decimal::from(3 + i64::from(b))),
        fields: TEXT_FIELDS
            .iter()
            .map(|n| ((*n).to_owned(), tag.to_owned()))
            .collect(),
    };
    (ev, tag.into())
}

// ---- raw templates -----------------------------------------------------------------------

fn raw_url(text: &str, ev: &Event, rand: &str) {
    let Ok(t) = Template::parse_url(text) else {
        return;
    };
    let [(a, a_url), (b, b_url)] = [false, true].map(|which| {
        let (ev, rand) = sample(which);
        let r = t
            .render_url(&ev, &rand)
            .unwrap_or_else(|e| panic!("{text:?} accepted, but plain values fail to render: {e}"));
        let url = Url::parse(&r).unwrap_or_else(|e| panic!("rendered {r:?} does not parse: {e}"));
        (r, url)
    });
    assert!(
        matches!(a_url.scheme(), "http" | "https"),
        "{text:?} renders {a:?}"
    );
    assert!(
        a_url.host_str().is_some_and(|h| !h.is_empty()),
        "{text:?} renders {a:?}"
    );
    assert_eq!(
        &a_url[..Position::BeforePath],
        &b_url[..Position::BeforePath],
        "a macro reaches the scheme or authority of {text:?}: {a:?} vs {b:?}"
    );
    let rendered = match t.render_url(ev, rand) {
        Ok(r) => r,
        Err(TemplateError::PathChanged(_)) => return,
        Err(e) => panic!("render_url may only refuse a path change: {e}"),
    };
    let url = Url::parse(&rendered).unwrap_or_else(|e| panic!("rendered {rendered:?} does not parse: {e}"));
    assert_eq!(
        &url[..Position::BeforePath],
        &a_url[..Position::BeforePath],
        "values moved the URL {text:?}: {rendered:?}"
    );
    let segments = |u: &Url| {
        u.path_segments()
            .map(|s| s.map(str::to_owned).collect::<Vec<_>>())
    };
    let (a_path, b_path, path) = (segments(&a_url), segments(&b_url), segments(&url));
    let (Some(a_path), Some(b_path), Some(path)) = (a_path, b_path, path) else {
        panic!("{text:?} renders a URL without a path: {rendered:?}");
    };
    assert_eq!(
        path.len(),
        a_path.len(),
        "the path of {text:?} changed: {rendered:?}"
    );
    for ((a, b), r) in a_path.iter().zip(&b_path).zip(&path) {
        // A segment that two different samples leave alone holds no macro.
        if a == b {
            assert_eq!(r, a, "literal path segment changed in {text:?}: {rendered:?}");
        }
    }
}

fn raw_json(text: &str, ev: &Event, rand: &str) {
    let Ok(t) = Template::parse_body(text, Escape::Json) else {
        return;
    };
    let body = t.render(ev, Escape::Json, rand);
    if let Err(e) = serde_json::from_str::<serde_json::Value>(&body) {
        panic!("{text:?} accepted as a JSON body, but renders invalid JSON {body:?}: {e}");
    }
}

fn raw_form(text: &str, ev: &Event, rand: &str) {
    if let Ok(t) = Template::parse_body(text, Escape::Form) {
        let _ = t.render(ev, Escape::Form, rand);
    }
    let _ = Template::parse(text);
}

// ---- built templates ---------------------------------------------------------------------

/// A piece of a built template: literal text, or a known macro.
#[derive(Arbitrary, Debug)]
enum Part {
    Lit(String),
    Macro(u8),
}

/// Each macro alone, rendered with one escape: the pieces a built template's rendering is
/// expected to be made of. Also checks that the three escapes agree on the value.
struct Values {
    names: Vec<&'static str>,
    url: Vec<String>,
    json: Vec<String>,
    form: Vec<String>,
    plain: Vec<String>,
}

impl Values {
    fn of(ev: &Event, rand: &str) -> Values {
        let names: Vec<&'static str> = macros::known_names().collect();
        let render = |name: &str, escape| {
            Template::parse(&format!("{{{name}}}"))
                .expect("a known macro parses")
                .render(ev, escape, rand)
        };
        let mut v = Values {
            url: names.iter().map(|n| render(n, Escape::Url)).collect(),
            json: names.iter().map(|n| render(n, Escape::Json)).collect(),
            form: names.iter().map(|n| render(n, Escape::Form)).collect(),
            plain: Vec::new(),
            names,
        };
        for i in 0..v.names.len() {
            let (name, url) = (v.names[i], &v.url[i]);
            let unreserved = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
            let bytes = url.as_bytes();
            let mut k = 0;
            while k < bytes.len() {
                if bytes[k] == b'%' {
                    let hex = bytes.get(k + 1..k + 3).unwrap_or_default();
                    assert!(
                        hex.len() == 2 && hex.iter().all(u8::is_ascii_hexdigit),
                        "{name}: {url:?}"
                    );
                    k += 3;
                } else {
                    assert!(
                        unreserved(bytes[k]),
                        "{{{name}}} leaves {:?} unescaped in a URL",
                        bytes[k]
                    );
                    k += 1;
                }
            }
            let plain = percent_decode_str(url)
                .decode_utf8()
                .expect("URL value decodes to UTF-8");
            let json: String =
                serde_json::from_str(&format!("\"{}\"", v.json[i])).expect("JSON value is a string body");
            assert_eq!(json, plain, "{{{name}}}: JSON and URL escapes disagree");
            let form: Vec<(String, String)> =
                url::form_urlencoded::parse(format!("k={}", v.form[i]).as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
            assert_eq!(
                form,
                vec![("k".to_owned(), plain.to_string())],
                "{{{name}}}: form escape"
            );
            v.plain.push(plain.into_owned());
        }
        v
    }
}

/// What a built piece of template should render as.
#[derive(Default)]
struct Want {
    /// The rendering: escaped literals and escaped values.
    escaped: String,
    /// The same, unescaped: what a JSON or form parser reads back.
    plain: String,
    has_macro: bool,
}

/// Appends `parts` to a template text and returns what they should render as. `lit` turns
/// literal text into template text that renders as itself and never forms a macro; `escaped`
/// holds each macro rendered alone with the escape under test.
fn build(
    parts: &[Part],
    template: &mut String,
    lit: fn(&str) -> String,
    escaped: &[String],
    v: &Values,
) -> Want {
    let mut want = Want::default();
    for part in parts {
        match part {
            Part::Lit(s) => {
                let l = lit(s);
                template.push_str(&l);
                want.escaped.push_str(&l);
                want.plain.push_str(s);
            }
            Part::Macro(i) => {
                let i = usize::from(*i) % v.names.len();
                template.push_str(&format!("{{{}}}", v.names[i]));
                want.escaped.push_str(&escaped[i]);
                want.plain.push_str(&v.plain[i]);
                want.has_macro = true;
            }
        }
    }
    want
}

/// Literal URL text that the URL parser keeps as it is, in path, query and fragment alike.
fn url_lit(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-._~!$&()*+,;=:@".contains(*c))
        .collect()
}

fn built_url(u: &mut Unstructured) -> Result<()> {
    const HOSTS: &[&str] = &[
        "example.test",
        "127.0.0.1:8080",
        "[::1]",
        "user:pw@x.test",
        "a-b.test:1",
    ];
    let https: bool = u.arbitrary()?;
    let host = *u.choose(HOSTS)?;
    let path: Vec<Vec<Part>> = u.arbitrary()?;
    let query: Option<Vec<Part>> = u.arbitrary()?;
    let fragment: Option<Vec<Part>> = u.arbitrary()?;
    let (ev, rand) = event(u)?;
    let v = Values::of(&ev, &rand);

    let mut text = format!("{}://{host}", if https { "https" } else { "http" });
    let mut segments = Vec::new();
    let mut dot_from_value = false;
    for parts in &path {
        let mut seg = String::new();
        let mut want = build(parts, &mut seg, url_lit, &v.url, &v);
        if matches!(want.escaped.as_str(), "." | "..") {
            if want.has_macro {
                dot_from_value = true;
            } else {
                // A literal dot segment is the template's own business, not under test here.
                seg = "dot".into();
                want.escaped = "dot".into();
            }
        }
        text.push('/');
        text.push_str(&seg);
        segments.push(want.escaped);
    }
    if segments.is_empty() {
        segments.push(String::new());
    }
    let want_query = query.map(|parts| {
        text.push('?');
        build(&parts, &mut text, url_lit, &v.url, &v).escaped
    });
    let want_fragment = fragment.map(|parts| {
        text.push('#');
        build(&parts, &mut text, url_lit, &v.url, &v).escaped
    });

    let t = Template::parse_url(&text).unwrap_or_else(|e| panic!("built template {text:?} refused: {e}"));
    raw_url(&text, &ev, &rand);
    match t.render_url(&ev, &rand) {
        Err(TemplateError::PathChanged(r)) => {
            assert!(
                dot_from_value,
                "{text:?} refused, though no value forms a dot segment: {r:?}"
            )
        }
        Err(e) => panic!("render_url may only refuse a path change: {e}"),
        Ok(r) => {
            assert!(
                !dot_from_value,
                "{text:?}: a value formed a dot segment, yet {r:?} was accepted"
            );
            let url = Url::parse(&r).unwrap_or_else(|e| panic!("rendered {r:?} does not parse: {e}"));
            let got: Vec<&str> = url.path_segments().expect("http has a path").collect();
            assert_eq!(got, segments, "path of {text:?} rendered as {r:?}");
            assert_eq!(
                url.query(),
                want_query.as_deref(),
                "query of {text:?} rendered as {r:?}"
            );
            assert_eq!(
                url.fragment(),
                want_fragment.as_deref(),
                "fragment of {text:?}: {r:?}"
            );
        }
    }
    Ok(())
}

/// JSON string content that renders as `s` itself; braces as `\u007b`/`\u007d`, never a macro.
fn json_lit(s: &str) -> String {
    let quoted = serde_json::Value::String(s.to_owned()).to_string();
    quoted[1..quoted.len() - 1]
        .replace('{', "\\u007b")
        .replace('}', "\\u007d")
}

fn built_json(u: &mut Unstructured) -> Result<()> {
    let members: Vec<(Vec<Part>, Vec<Part>)> = u.arbitrary()?;
    let (ev, rand) = event(u)?;
    let v = Values::of(&ev, &rand);
    let mut text = String::from("{");
    let mut want = serde_json::Map::new();
    for (n, (key, value)) in members.iter().enumerate() {
        if n > 0 {
            text.push(',');
        }
        text.push('"');
        let k = build(key, &mut text, json_lit, &v.json, &v);
        text.push_str("\":\"");
        let val = build(value, &mut text, json_lit, &v.json, &v);
        text.push('"');
        want.insert(k.plain, serde_json::Value::String(val.plain));
    }
    text.push('}');
    let t = Template::parse_body(&text, Escape::Json)
        .unwrap_or_else(|e| panic!("built JSON template {text:?} refused: {e}"));
    let body = t.render(&ev, Escape::Json, &rand);
    let got: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{text:?} renders invalid JSON {body:?}: {e}"));
    assert_eq!(
        got,
        serde_json::Value::Object(want),
        "{text:?} rendered as {body:?}"
    );
    Ok(())
}

/// Form text that decodes to `s` itself; braces come out as `%7B`/`%7D`, never a macro.
fn form_lit(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn built_form(u: &mut Unstructured) -> Result<()> {
    let fields: Vec<(Vec<Part>, Vec<Part>)> = u.arbitrary()?;
    let (ev, rand) = event(u)?;
    let v = Values::of(&ev, &rand);
    let mut text = String::new();
    let mut want = Vec::new();
    for (n, (key, value)) in fields.iter().enumerate() {
        if n > 0 {
            text.push('&');
        }
        let k = build(key, &mut text, form_lit, &v.form, &v);
        text.push('=');
        let val = build(value, &mut text, form_lit, &v.form, &v);
        want.push((k.plain, val.plain));
    }
    let t = Template::parse_body(&text, Escape::Form)
        .unwrap_or_else(|e| panic!("built form template {text:?} refused: {e}"));
    let body = t.render(&ev, Escape::Form, &rand);
    let got: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    assert_eq!(got, want, "{text:?} rendered as {body:?}");
    Ok(())
}
