//! Property tests: whatever the values, a rendered URL parses and keeps the template's scheme,
//! host, path and parameters; a JSON body stays valid JSON; a form body keeps its fields.

use proptest::prelude::*;

use super::*;
use crate::event;

fn event_with(value: &str) -> Event {
    let mut ev = event::parse(
        br#"{"conversion_id":"c","status":1,"updated_at":"2026-01-01T00:00:00Z","offer_id":1,"affiliate_id":2}"#,
    )
    .expect("base event");
    for name in ["sub1", "comment", "click_id", "goal"] {
        ev.fields.insert(name.into(), value.to_owned());
    }
    ev
}

proptest! {
    #[test]
    fn rendered_urls_keep_their_structure(value in any::<String>()) {
        let template = Template::parse_url("https://example.test/a/{sub1}/b?x={clickid}&y={sub1}#{comment}")
            .expect("valid template");
        let rendered = match template.render_url(&event_with(&value), "r") {
            Ok(r) => r,
            Err(TemplateError::PathChanged(_)) => {
                // Only a whole-segment `.` or `..` is refused.
                prop_assert!(value == "." || value == "..", "refused {value:?}");
                return Ok(());
            }
            Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
        };
        let url = url::Url::parse(&rendered).expect("a rendered URL always parses");
        prop_assert_eq!(url.scheme(), "https");
        prop_assert_eq!(url.host_str(), Some("example.test"));
        let segments: Vec<&str> = url.path_segments().expect("path").collect();
        prop_assert_eq!(segments.len(), 3);
        prop_assert_eq!(segments[0], "a");
        prop_assert_eq!(segments[2], "b");
        let pairs: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        prop_assert_eq!(pairs, vec![("x".to_owned(), value.clone()), ("y".to_owned(), value.clone())]);
    }

    #[test]
    fn json_bodies_stay_valid_json(value in any::<String>()) {
        let template = Template::parse_body(r#"{"a":"{sub1}","b":["{comment}","x{goal}y"]}"#, Escape::Json)
            .expect("valid body");
        let body = template.render(&event_with(&value), Escape::Json, "r");
        let parsed: serde_json::Value = serde_json::from_str(&body).expect("always valid JSON");
        prop_assert_eq!(&parsed["a"], &serde_json::Value::String(value.clone()));
        prop_assert_eq!(&parsed["b"][1], &serde_json::Value::String(format!("x{value}y")));
    }

    #[test]
    fn form_bodies_keep_their_fields(value in any::<String>()) {
        let template = Template::parse_body("a={sub1}&b={comment}", Escape::Form).expect("valid body");
        let body = template.render(&event_with(&value), Escape::Form, "r");
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(body.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        prop_assert_eq!(pairs, vec![("a".to_owned(), value.clone()), ("b".to_owned(), value)]);
    }

    #[test]
    fn any_template_text_parses_or_is_refused_without_panic(text in any::<String>()) {
        let _ = Template::parse(&text);
        let _ = Template::parse_url(&text);
        let _ = Template::parse_body(&text, Escape::Json);
    }
}
