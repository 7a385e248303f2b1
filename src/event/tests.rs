use super::*;

/// The event; the JSON Schema must accept it too.
fn ok(json: &str) -> Event {
    let verdict = parse(json.as_bytes());
    super::schema_tests::assert_agrees(json.as_bytes(), &verdict);
    verdict.unwrap_or_else(|e| panic!("{json} should parse: {e}"))
}

/// The reason; the JSON Schema must refuse it too where a schema can say why.
fn err(body: &[u8]) -> String {
    let verdict = parse(body);
    super::schema_tests::assert_agrees(body, &verdict);
    match verdict {
        Ok(ev) => panic!(
            "{:?} should be refused, got {ev:?}",
            String::from_utf8_lossy(body)
        ),
        Err(e) => e.0,
    }
}

const BASE: &str =
    r#""conversion_id":"c1","updated_at":"2026-01-02T03:04:05Z","offer_id":42,"affiliate_id":"7""#;

#[test]
fn minimal_event_parses_and_normalises_ids_to_text() {
    let ev = ok(&format!(r#"{{{BASE},"status":"Approved"}}"#));
    assert_eq!(ev.conversion_id, "c1");
    assert_eq!(ev.status, Status::Approved);
    assert_eq!(ev.offer_id, "42");
    assert_eq!(ev.affiliate_id, "7");
    assert_eq!(ev.updated_at.to_rfc3339(), "2026-01-02T03:04:05+00:00");
    assert!(ev.payout.is_none() && ev.fields.is_empty());
}

#[test]
fn statuses_and_aliases() {
    let table = [
        (r#""approved""#, Status::Approved),
        (r#""CONFIRMED""#, Status::Approved),
        ("1", Status::Approved),
        (r#""1""#, Status::Approved),
        (r#""Pending""#, Status::Pending),
        ("2", Status::Pending),
        (r#""declined""#, Status::Declined),
        ("3", Status::Declined),
        (r#""hold""#, Status::Hold),
        ("5", Status::Hold),
        (r#""not_found""#, Status::NotFound),
    ];
    for (raw, want) in table {
        let ev = ok(&format!(r#"{{{BASE},"status":{raw}}}"#));
        assert_eq!(ev.status, want, "status {raw}");
    }
    for raw in [r#""paid""#, "4", r#""""#, "true", "[1]"] {
        let reason = err(format!(r#"{{{BASE},"status":{raw}}}"#).as_bytes());
        assert!(reason.contains("status"), "{raw}: {reason}");
    }
}

#[test]
fn status_codes_follow_affise() {
    assert_eq!(Status::Approved.code(), Some(1));
    assert_eq!(Status::Pending.code(), Some(2));
    assert_eq!(Status::Declined.code(), Some(3));
    assert_eq!(Status::Hold.code(), Some(5));
    assert_eq!(Status::NotFound.code(), None);
}

#[test]
fn timestamps_need_an_offset_and_keep_microseconds() {
    let ev = ok(r#"{"conversion_id":"c","status":1,"offer_id":1,"affiliate_id":1,
        "updated_at":"2026-01-02 03:04:05.1234567+02:00"}"#);
    assert_eq!(ev.updated_at.to_rfc3339(), "2026-01-02T01:04:05.123456+00:00");
    for bad in [
        "2026-01-02T03:04:05",
        "2026-01-02",
        "yesterday",
        "2026-13-02T03:04:05Z",
    ] {
        let body = format!(
            r#"{{"conversion_id":"c","status":1,"offer_id":1,"affiliate_id":1,"updated_at":"{bad}"}}"#
        );
        assert!(err(body.as_bytes()).contains("updated_at"), "{bad}");
    }
}

#[test]
fn decimals_stay_exact() {
    let ev = ok(&format!(
        r#"{{{BASE},"status":1,"payout":0.1,"revenue":"12.500"}}"#
    ));
    assert_eq!(ev.payout.map(|d| d.to_string()).as_deref(), Some("0.1"));
    assert_eq!(ev.revenue.map(|d| d.to_string()).as_deref(), Some("12.500"));
    for bad in [r#""NaN""#, r#""inf""#, "1e400", r#""1,5""#, "true"] {
        let reason = err(format!(r#"{{{BASE},"status":1,"payout":{bad}}}"#).as_bytes());
        assert!(reason.contains("payout"), "{bad}: {reason}");
    }
}

#[test]
fn each_kind_of_wrongness_has_a_reason() {
    let table: [(&[u8], &str); 9] = [
        (b"not json", "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[1,2]", "not a JSON object"),
        (br#"{"status":1,"updated_at":"2026-01-02T03:04:05Z","offer_id":1,"affiliate_id":1}"#, "missing required field `conversion_id`"),
        (br#"{"conversion_id":"c","updated_at":"2026-01-02T03:04:05Z","offer_id":1,"affiliate_id":1}"#, "missing required field `status`"),
        (br#"{"conversion_id":"c","status":1,"offer_id":1,"affiliate_id":1}"#, "missing required field `updated_at`"),
        (br#"{"conversion_id":"c","status":1,"updated_at":"2026-01-02T03:04:05Z","affiliate_id":1}"#, "missing required field `offer_id`"),
        (br#"{"conversion_id":"","status":1,"updated_at":"2026-01-02T03:04:05Z","offer_id":1,"affiliate_id":1}"#, "must not be empty"),
        (br#"{"conversion_id":"a\u0000b","status":1,"updated_at":"2026-01-02T03:04:05Z","offer_id":1,"affiliate_id":1}"#, "control characters"),
    ];
    for (body, want) in table {
        let reason = err(body);
        assert!(
            reason.contains(want),
            "{:?}: got {reason:?}, want {want:?}",
            String::from_utf8_lossy(body)
        );
    }
    let long = "x".repeat(129);
    let body = format!(
        r#"{{"conversion_id":"{long}","status":1,"updated_at":"2026-01-02T03:04:05Z","offer_id":1,"affiliate_id":1}}"#
    );
    assert!(err(body.as_bytes()).contains("longer than 128"));
}

#[test]
fn a_string_that_does_not_decode_names_its_field() {
    // A lone surrogate escape is valid JSON syntax but no Unicode text.
    for (field, value) in [("conversion_id", r#""\ud800""#), ("comment", r#""x\udc00y""#)] {
        let body = format!(
            r#"{{"conversion_id":"c","status":1,"updated_at":"2026-01-02T03:04:05Z","offer_id":1,"affiliate_id":1,"{field}":{value}}}"#
        );
        let reason = err(body.as_bytes());
        assert!(
            reason.starts_with(&format!("`{field}` is not a valid JSON string"))
                && !reason.contains(" at line "),
            "{reason}"
        );
    }
}

#[test]
fn optional_fields_are_kept_and_unknown_ones_ignored() {
    let ev = ok(&format!(
        r#"{{{BASE},"status":1,"goal":"Sale","sub1":"a&b","ext2":5,"unknown":{{"x":1}},"comment":null,"sequence":9,"event_id":"e-1"}}"#
    ));
    assert_eq!(ev.field("goal"), Some("Sale"));
    assert_eq!(ev.field("sub1"), Some("a&b"));
    assert_eq!(ev.field("ext2"), Some("5"));
    assert_eq!(ev.field("comment"), None);
    assert_eq!(ev.sequence, Some(9));
    assert_eq!(ev.event_id.as_deref(), Some("e-1"));
}

#[test]
fn stored_form_round_trips() {
    let ev = ok(&format!(
        r#"{{{BASE},"status":"confirmed","payout":"1.50","created_at":"2026-01-01T00:00:00+01:00","geo":"DE"}}"#
    ));
    let json = serde_json::to_string(&ev).expect("serialises");
    let back: Event = serde_json::from_str(&json).expect("deserialises");
    assert_eq!(back, ev);
    assert_eq!(back.payout.map(|d| d.to_string()).as_deref(), Some("1.50"));
}

#[test]
fn an_event_id_with_a_control_character_is_refused_naming_the_field() {
    // Regression: `event_id` becomes the Idempotency-Key header, and a CR or LF there made a
    // request no client can build; it was then retried for two days.
    for bad in [
        r"a\nb",
        r"a\r\nX-Injected: 1",
        r"tab\there",
        r"nul\u0000",
        r"del\u007f",
        r"c1\u0085",
    ] {
        let body = format!(
            r#"{{"conversion_id":"c","status":1,"updated_at":"2026-01-02T03:04:05Z","offer_id":1,"affiliate_id":1,"event_id":"{bad}"}}"#
        );
        let reason = err(body.as_bytes());
        assert!(
            reason.contains("`event_id`") && reason.contains("control characters"),
            "{bad}: {reason}"
        );
    }
    // Free text that never becomes a header keeps its line breaks.
    let body = br#"{"conversion_id":"c","status":1,"updated_at":"2026-01-02T03:04:05Z","offer_id":1,"affiliate_id":1,"comment":"two\nlines","event_id":"e-1 \u00fc"}"#;
    let verdict = parse(body);
    super::schema_tests::assert_agrees(body, &verdict);
    let ev = verdict.expect("valid");
    assert_eq!(ev.field("comment"), Some("two\nlines"));
    assert_eq!(ev.event_id.as_deref(), Some("e-1 ü"));
}
