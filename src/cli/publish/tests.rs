use super::*;

#[test]
fn routing_keys() {
    assert_eq!(routing_key(r#"{"status":"Confirmed"}"#), "conversion.approved");
    assert_eq!(routing_key(r#"{"status":3}"#), "conversion.declined");
    assert_eq!(routing_key(r#"{"status":"weird"}"#), "conversion.unknown");
    assert_eq!(routing_key("not json"), "conversion.unknown");
}

#[test]
fn the_conversion_id_header_is_set_when_the_line_has_one() {
    let header = |line: &str| {
        headers_of(&json_of(line.as_bytes()))
            .inner()
            .contains_key(CONVERSION_ID_HEADER)
    };
    let table = headers_of(&json_of(br#"{"conversion_id":"c-1","status":1}"#));
    let json = amqp::headers_json(Some(&table));
    assert_eq!(json, serde_json::json!({ "x-conversion-id": "c-1" }));
    assert!(!header(r#"{"conversion_id":7}"#));
    assert!(!header("not json"));
    assert!(!header(r#"{"status":1}"#));
}

#[test]
fn lines_are_numbered_as_in_the_file_and_blank_ones_counted() {
    let l = lines(b"a\n\n  \r\nb\nc");
    assert_eq!(l.lines, vec![(1, &b"a"[..]), (4, &b"b"[..]), (5, &b"c"[..])]);
    assert_eq!(l.blank, 2);
    let l = lines(b"a\n");
    assert_eq!((l.lines.len(), l.blank), (1, 0));
    let l = lines(b"");
    assert_eq!((l.lines.len(), l.blank), (0, 0));
}

#[test]
fn counts_are_spelled_in_the_singular_and_the_plural() {
    assert_eq!(plural(1, "message"), "1 message");
    assert_eq!(plural(2, "message"), "2 messages");
    assert_eq!(plural(0, "message"), "0 messages");
    assert_eq!(skipped(0), "");
    assert_eq!(skipped(1), " (skipped 1 blank line)");
}
