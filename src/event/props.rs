//! Property tests: the parser never panics, and what it accepts round-trips through storage.

use proptest::prelude::*;

use super::*;

/// JSON-looking text built from the fields the parser reads, with arbitrary values.
fn eventish() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        any::<String>().prop_map(|s| serde_json::Value::String(s).to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        Just("1e999".to_owned()),
        Just("\"2026-01-01T00:00:00Z\"".to_owned()),
        Just("\"approved\"".to_owned()),
    ];
    let names = prop::sample::select(vec![
        "conversion_id",
        "status",
        "updated_at",
        "offer_id",
        "affiliate_id",
        "sequence",
        "payout",
        "revenue",
        "created_at",
        "click_time",
        "goal",
        "sub1",
        "event_id",
        "currency",
    ]);
    prop::collection::vec((names, value), 0..12).prop_map(|fields| {
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", body.join(","))
    })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(&body);
    }

    #[test]
    fn eventish_json_is_parsed_or_refused_with_a_reason(text in eventish()) {
        let verdict = parse(text.as_bytes());
        super::schema_tests::assert_agrees(text.as_bytes(), &verdict);
        match verdict {
            Ok(event) => {
                let stored = serde_json::to_string(&event).expect("serialises");
                let back: Event = serde_json::from_str(&stored).expect("deserialises");
                prop_assert_eq!(back, event);
            }
            Err(e) => prop_assert!(!e.0.is_empty()),
        }
    }

    #[test]
    fn deep_nesting_is_no_crash(depth in 1usize..3000) {
        let (open, close) = ("[".repeat(depth), "]".repeat(depth));
        let base = r#""conversion_id":"c","status":"approved","updated_at":"2026-01-01T00:00:00Z","offer_id":1,"affiliate_id":2"#;
        // In an unknown field it is ignored (skipped without recursing): the event is accepted.
        let unknown = format!(r#"{{{base},"x":{open}{close}}}"#);
        prop_assert!(parse(unknown.as_bytes()).is_ok(), "{}", depth);
        // In a known field it is a wrong type: refused with a reason, no stack overflow.
        let known = format!(r#"{{{base},"sub1":{open}{close}}}"#);
        match parse(known.as_bytes()) {
            Ok(_) => prop_assert!(false, "a nested array accepted as sub1 at depth {}", depth),
            Err(e) => prop_assert!(e.0.contains("sub1"), "{}", e.0),
        }
    }
}
