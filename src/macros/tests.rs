use super::*;
use crate::event;

fn sample() -> Event {
    event::parse(
        br#"{"conversion_id":"conv-1","status":"confirmed","updated_at":"2026-03-04T05:06:07Z",
        "created_at":"2026-03-01T10:20:30+02:00","click_time":"2026-02-28T23:59:58Z",
        "offer_id":42,"affiliate_id":"7","event_id":"ev-9","offer_name":"Offer & Co",
        "affiliate_name":"Aff","advertiser_id":3,"goal":"Sale","payout":"1.50","revenue":2,
        "currency":"USD","comment":"ok","click_id":"abc","transaction_id":"tx","ip":"1.2.3.4",
        "geo":"DE","city":"Berlin","device_ua":"UA/1","os":"Android","referrer":"r",
        "fbclid":"fb","user_id":"u","promo_code":"p","ref_id":"rf","os_id":"o",
        "sub1":"s1","sub2":"s2","sub3":"s3","sub4":"s4","sub5":"s5","sub6":"s6","sub7":"s7","sub8":"s8",
        "ext1":"e1","ext2":"e2","ext3":"e3","custom_field1":"c1","custom_field2":"c2",
        "custom_field3":"c3","custom_field4":"c4","custom_field5":"c5","custom_field6":"c6",
        "custom_field7":"c7"}"#,
    )
    .expect("sample event parses")
}

fn render_one(name: &str, ev: &Event) -> String {
    Template::parse(&format!("{{{name}}}"))
        .expect("known macro")
        .render(ev, Escape::Url, "RAND")
}

#[test]
fn every_macro_renders() {
    let ev = sample();
    let table = [
        ("clickid", "abc"),
        ("click_id", "abc"),
        ("pid", "7"),
        ("offer_id", "42"),
        ("offerid", "42"),
        ("offer_name", "Offer%20%26%20Co"),
        ("affiliate_name", "Aff"),
        ("advertiser_id", "3"),
        ("transactionid", "tx"),
        ("conversion_id", "conv-1"),
        ("status", "1"),
        ("status_name", "approved"),
        ("goal", "Sale"),
        ("sum", "1.50"),
        ("payout", "1.50"),
        ("revenue", "2"),
        ("currency", "USD"),
        ("comment", "ok"),
        ("date", "2026-03-01%2008%3A20%3A30"),
        ("timestamp", "1772353230"),
        ("click_date", "2026-02-28%2023%3A59%3A58"),
        ("time", "1772323198"),
        ("time_petty", "23%3A59%3A58"),
        ("date_only", "2026-02-28"),
        ("ip", "1.2.3.4"),
        ("geo", "DE"),
        ("city", "Berlin"),
        ("device_ua", "UA%2F1"),
        ("uagent", "UA%2F1"),
        ("os", "Android"),
        ("referrer", "r"),
        ("fbclid", "fb"),
        ("user_id", "u"),
        ("promo_code", "p"),
        ("ref_id", "rf"),
        ("os_id", "o"),
        ("rand", "RAND"),
        ("event_id", "ev-9"),
    ];
    for (name, want) in table {
        assert_eq!(render_one(name, &ev), want, "{{{name}}}");
    }
    for i in 1..=8 {
        assert_eq!(render_one(&format!("sub{i}"), &ev), format!("s{i}"));
    }
    for i in 1..=3 {
        assert_eq!(render_one(&format!("ext{i}"), &ev), format!("e{i}"));
    }
    for i in 1..=7 {
        assert_eq!(render_one(&format!("custom_field{i}"), &ev), format!("c{i}"));
        assert_eq!(render_one(&format!("custom_field_{i}"), &ev), format!("c{i}"));
    }
    // Every listed name is covered by the table or the loops above.
    assert_eq!(known_names().count(), table.len() + 8 + 3 + 14);
}

#[test]
fn missing_values_render_empty_and_date_falls_back_to_updated_at() {
    let ev = event::parse(br#"{"conversion_id":"c","status":2,"updated_at":"2026-03-04T05:06:07Z","offer_id":1,"affiliate_id":1}"#)
        .expect("parses");
    for name in ["sum", "goal", "click_date", "time", "event_id", "sub3"] {
        assert_eq!(render_one(name, &ev), "", "{{{name}}}");
    }
    assert_eq!(render_one("date", &ev), "2026-03-04%2005%3A06%3A07");
    assert_eq!(render_one("status", &ev), "2");
}

#[test]
fn hostile_values_cannot_change_the_url() {
    let mut ev = sample();
    let hostile = "a&b=c d#e/f?g@h:i%j{k}ü";
    ev.fields.insert("sub1".into(), hostile.into());
    let t = Template::parse_url("https://example.com/cb/{sub1}?x={sub1}&y=1#{sub1}").expect("valid");
    let rendered = t.render(&ev, Escape::Url, "r");
    let url = url::Url::parse(&rendered).expect("parses");
    assert_eq!(url.host_str(), Some("example.com"));
    assert_eq!(url.path_segments().map(|s| s.count()), Some(2));
    let pairs: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (k.into(), v.into())).collect();
    assert_eq!(
        pairs,
        vec![("x".into(), hostile.into()), ("y".into(), "1".into())]
    );
    let decoded = percent_encoding::percent_decode_str(url.fragment().expect("fragment"))
        .decode_utf8()
        .expect("utf8");
    assert_eq!(decoded, hostile);
}

#[test]
fn json_and_form_bodies_escape_values() {
    let mut ev = sample();
    ev.fields.insert("comment".into(), "say \"hi\"\n\\ & =".into());
    let json = Template::parse_body(r#"{"c":"{comment}","s":"{sum}"}"#, Escape::Json).expect("valid");
    let body: serde_json::Value = serde_json::from_str(&json.render(&ev, Escape::Json, "r")).expect("json");
    assert_eq!(body["c"], "say \"hi\"\n\\ & =");
    assert_eq!(body["s"], "1.50");
    let form = Template::parse_body("c={comment}&s={sum}", Escape::Form).expect("valid");
    let rendered = form.render(&ev, Escape::Form, "r");
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(rendered.as_bytes())
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("c".into(), "say \"hi\"\n\\ & =".into()),
            ("s".into(), "1.50".into())
        ]
    );
}

#[test]
fn templates_are_validated() {
    match Template::parse("https://x.test/?a={nope}") {
        Err(TemplateError::UnknownMacro { name, .. }) => assert_eq!(name, "nope"),
        other => panic!("unknown macro should be refused, got {other:?}"),
    }
    for bad in [
        "https://{sub1}.example.com/",
        "http://example.com{sub1}",
        "{sub1}://x/",
        "ftp://x.test/{sub1}",
        "not a url",
    ] {
        assert!(Template::parse_url(bad).is_err(), "{bad} should be refused");
    }
    assert!(Template::parse_body(r#"{"sum": {sum}}"#, Escape::Json).is_err());
    // Braces that are not macros, in any case, are literal text.
    let t = Template::parse_url("https://x.test/p?a={A}&b={}&c={subb&d={-}&e={").expect("literal braces");
    assert_eq!(
        t.render(&sample(), Escape::Url, "r"),
        "https://x.test/p?a={A}&b={}&c={subb&d={-}&e={"
    );
}

#[test]
fn the_unknown_macro_message_names_the_nearest_macros_only() {
    let msg = Template::parse("https://x.test/?a={clikid}")
        .expect_err("refused")
        .to_string();
    assert_eq!(
        msg,
        "unknown macro {clikid}; did you mean `{clickid}` or `{click_id}`?"
    );
    let msg = Template::parse("{custom_field}")
        .expect_err("refused")
        .to_string();
    assert!(msg.contains("`{custom_field1}`"), "{msg}");
    assert!(
        !msg.contains("payout") && !msg.contains("sub1"),
        "not every name: {msg}"
    );
    let msg = Template::parse("{qwertyuiop}").expect_err("refused").to_string();
    assert_eq!(
        msg,
        "unknown macro {qwertyuiop}; no known macro is close (the list is in docs/macros.md)"
    );
}

#[test]
fn a_macro_in_another_case_or_unclosed_is_refused_with_a_hint() {
    let table = [
        (
            "https://x.test/?c={ClickID}",
            "{ClickID} is not a macro: macro names are lower-case; did you mean `{clickid}` or `{click_id}`?",
        ),
        (
            "https://x.test/?s={STATUS}&x=1",
            "{STATUS} is not a macro: macro names are lower-case; did you mean `{status}`?",
        ),
        (
            "https://x.test/?s={status",
            "{status is not closed; did you mean `{status}`?",
        ),
        (
            "https://x.test/?s={sub1&t=2",
            "{sub1 is not closed; did you mean `{sub1}`, `{sub2}` or `{sub3}`?",
        ),
        (
            "https://x.test/{Date",
            "{Date is not closed; did you mean `{date}`?",
        ),
    ];
    for (template, want) in table {
        let err = Template::parse_url(template).expect_err(template);
        assert!(
            matches!(
                err,
                TemplateError::WrongCase { .. } | TemplateError::Unclosed { .. }
            ),
            "{template}: {err:?}"
        );
        assert_eq!(err.to_string(), want, "{template}");
    }
    // In a body too: it would go out as literal text.
    assert!(Template::parse_body("a={Sum}", Escape::Form).is_err());
    assert!(Template::parse_body(r#"{"a":"{comment"}"#, Escape::Json).is_err());
}

#[test]
fn a_host_no_request_can_be_built_to_is_refused() {
    // Regression: `http://{` was accepted, then every attempt failed to build and was retried.
    for bad in [
        "http://{",
        "http://{/cb?c={clickid}",
        "https://a{-}.test/",
        "http://a}b.test/",
    ] {
        match Template::parse_url(bad) {
            Err(TemplateError::BadUrl(msg)) => assert!(msg.contains("host name"), "{bad}: {msg}"),
            other => panic!("{bad} should be refused as a bad URL, got {other:?}"),
        }
    }
    for good in [
        "http://a-b_c.x.test:8080/p",
        "https://münchen.test/",
        "http://[::1]/",
        "http://127.0.0.1/",
    ] {
        assert!(Template::parse_url(good).is_ok(), "{good}");
    }
}

#[test]
fn errors_that_quote_a_url_mask_its_secrets() {
    let secret = "https://u:PASSW0RD@x.test/a/{sub1}?token=SECRET1&api_key=K3Y";
    let t = Template::parse_url(secret).expect("valid");
    let mut ev = sample();
    ev.fields.insert("sub1".into(), "..".into());
    let errors = [
        t.render_url(&ev, "r").expect_err("a dot segment"),
        Template::parse_url("https://u:PASSW0RD@{sub1}.x.test/?token=SECRET1&api_key=K3Y")
            .expect_err("macro in host"),
        Template::parse_url("http:///{sub1}/p?token=SECRET1&api_key=K3Y").expect_err("macro in host"),
        Template::parse_url("ftp://u:PASSW0RD@x.test/?token=SECRET1&api_key=K3Y").expect_err("scheme"),
        Template::parse_url("http://u:PASSW0RD@[::1/?token=SECRET1&api_key=K3Y").expect_err("no parse"),
    ];
    for err in errors {
        let msg = err.to_string();
        for secret in ["PASSW0RD", "SECRET1", "K3Y"] {
            assert!(!msg.contains(secret), "{secret} in: {msg}");
        }
    }
    let msg = t.render_url(&ev, "r").expect_err("a dot segment").to_string();
    assert!(
        msg.contains("x.test") && msg.contains("token=***"),
        "the URL is shown, masked: {msg}"
    );
}

#[test]
fn a_dot_segment_value_is_refused_not_sent_elsewhere() {
    let t = Template::parse_url("https://x.test/a/{sub1}/b?c={sub1}").expect("valid");
    for dots in [".", ".."] {
        let mut ev = sample();
        ev.fields.insert("sub1".into(), dots.into());
        assert!(
            matches!(t.render_url(&ev, "r"), Err(TemplateError::PathChanged(_))),
            "{dots}"
        );
    }
    let mut ev = sample();
    ev.fields.insert("sub1".into(), "...".into());
    assert_eq!(
        t.render_url(&ev, "r").expect("renders"),
        "https://x.test/a/.../b?c=..."
    );
}

#[test]
fn a_dot_segment_value_at_the_end_of_the_path_is_refused_too() {
    // Found by fuzzing (fuzz/fuzz_targets/macro_render.rs): `/a/.` parses as `/a/` with as many
    // segments as `/a/x`, so only counting them let it through.
    for (template, dots) in [
        ("https://x.test/{clickid}", "."),
        ("https://x.test/{clickid}", ".."),
        ("https://x.test/a/{clickid}", "."),
        ("https://x.test/a/{clickid}?c=1#f", "."),
    ] {
        let t = Template::parse_url(template).expect("valid");
        let mut ev = sample();
        ev.fields.insert("click_id".into(), dots.into());
        assert!(
            matches!(t.render_url(&ev, "r"), Err(TemplateError::PathChanged(_))),
            "{template} with {dots}"
        );
    }
    // An empty value is no dot segment.
    let mut ev = sample();
    ev.fields.insert("click_id".into(), String::new());
    let t = Template::parse_url("https://x.test/a/{clickid}").expect("valid");
    assert_eq!(t.render_url(&ev, "r").expect("renders"), "https://x.test/a/");
}

#[test]
fn a_macro_after_extra_slashes_is_in_the_host_and_refused() {
    // Found by fuzzing: URL parsers skip every slash after `http:`, so the macro became the host.
    for bad in ["http:///{sub1}/p", "https:////{sub1}", "http://\\/{sub1}/p"] {
        assert!(
            matches!(Template::parse_url(bad), Err(TemplateError::MacroInAuthority(_))),
            "{bad} should be refused"
        );
    }
    assert!(
        Template::parse_url("http:///x.test/{sub1}").is_ok(),
        "a literal host is fine"
    );
}

#[test]
fn a_header_value_renders_with_no_control_character_left() {
    let mut ev = sample();
    ev.fields
        .insert("comment".into(), "a\r\nX-Evil: 1\t\u{7f}\u{85}é b".into());
    let t = Template::parse_header_value("Bearer {comment}:{sub1}").expect("parses");
    let out = t.render(&ev, Escape::Header, "RAND");
    assert_eq!(out, "Bearer a%0D%0AX-Evil: 1%09%7F%C2%85é b:s1");
    assert!(reqwest::header::HeaderValue::from_str(&out).is_ok(), "{out}");
}

#[test]
fn a_header_value_error_does_not_quote_the_value() {
    let e = Template::parse_header_value("secretvalue {secretvalu}").expect_err("unknown");
    assert!(!e.to_string().contains("secretvalu"), "{e}");
    let e = Template::parse_header_value("x {clikid}").expect_err("unknown");
    assert!(e.to_string().contains("did you mean `{clickid}`"), "{e}");
}
