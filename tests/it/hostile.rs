//! Hostile input through the real broker and daemon: each kind is stored in
//! `rejected_messages` with a reason and dead-lettered, exactly once (a worker that crashed and
//! reconnected would see it again and store it twice), and the daemon goes on delivering.
//! `invalid.rs` covers the plain kinds (not JSON, bad UTF-8 in a string, a missing field, an
//! unknown status, a bad timestamp, a small oversized message); these are the nastier ones.
//! Valid-but-odd events (unknown fields nested deep, `1e5`, extreme timestamps) are delivered.

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::harness::*;

const MAX: usize = 300_000;

/// A valid event's fields with one replaced by raw JSON text.
fn with_raw(field: &str, raw: &str) -> Vec<u8> {
    let mut fields = vec![
        ("conversion_id", "\"h\"".to_owned()),
        ("status", "\"approved\"".to_owned()),
        ("updated_at", "\"2026-05-01T10:00:00Z\"".to_owned()),
        ("offer_id", "1".to_owned()),
        ("affiliate_id", "2".to_owned()),
    ];
    match fields.iter_mut().find(|(k, _)| *k == field) {
        Some(f) => f.1 = raw.to_owned(),
        None => fields.push((field, raw.to_owned())),
    }
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", body.join(",")).into_bytes()
}

/// A valid event whose `click_id` string holds these raw bytes.
fn with_bytes(raw: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(with_raw("click_id", "\"@@\"")).expect("utf-8");
    let (a, b) = text.split_once("@@").expect("placeholder");
    [a.as_bytes(), raw, b.as_bytes()].concat()
}

fn nested(depth: usize, open: &str, close: &str) -> String {
    format!("{}{}", open.repeat(depth), close.repeat(depth))
}

#[tokio::test]
async fn hostile_messages_are_rejected_once_dead_lettered_and_the_worker_goes_on() {
    let mut env = Env::new().await;
    env.cfg.amqp.max_message_bytes = MAX;
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/x?c={conversion_id}&sum={sum}")).await;
    let daemon = env.start().await;

    let digits = "9".repeat(500);
    let oversized: Vec<u8> = {
        let mut e = ev("big", "approved", 0, json!({"comment": "y".repeat(MAX)})).into_bytes();
        e.extend_from_slice(b"          ");
        e
    };
    // (body, words the reason must contain)
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (Vec::new(), "not valid JSON"),
        (b"   \n\t ".to_vec(), "not valid JSON"),
        (b"null".to_vec(), "not a JSON object"),
        (b"\"approved\"".to_vec(), "not a JSON object"),
        (nested(100_000, "[", "]").into_bytes(), "not a JSON object"),
        (
            // Nested under a key the parser skips without recursing: refused for what is missing.
            format!("{}1{}", "{\"a\":".repeat(40_000), "}".repeat(40_000)).into_bytes(),
            "missing required field `conversion_id`",
        ),
        (
            with_raw("conversion_id", &nested(50_000, "[", "]")),
            "`conversion_id`",
        ),
        (with_raw("payout", "1e400"), "`payout`"),
        (with_raw("payout", &digits), "`payout`"),
        (with_raw("revenue", &format!("-{digits}.5")), "`revenue`"),
        (with_raw("payout", "\"NaN\""), "`payout`"),
        (with_raw("payout", "\"Infinity\""), "`payout`"),
        (with_raw("revenue", "\"-inf\""), "`revenue`"),
        (with_raw("payout", "NaN"), "not valid JSON"),
        (with_raw("payout", "1e-400"), "`payout`"),
        (with_raw("offer_id", &"7".repeat(200)), "`offer_id`"),
        (with_raw("affiliate_id", "1.5"), "`affiliate_id`"),
        (with_raw("sequence", &digits), "`sequence`"),
        (with_raw("status", "1e400"), "unknown status"),
        (with_raw("conversion_id", "\"\\u0000\""), "control characters"),
        (with_raw("conversion_id", "\"a\\nb\""), "control characters"),
        (with_raw("conversion_id", "\"a\\u007fb\""), "control characters"),
        (with_raw("conversion_id", "\"a\\u0085b\""), "control characters"),
        (with_raw("conversion_id", "\"\""), "`conversion_id`"),
        (
            with_raw("conversion_id", &format!("\"{}\"", "c".repeat(129))),
            "longer than 128",
        ),
        (with_raw("comment", "\"a\\u0000b\""), "control characters"),
        (with_raw("conversion_id", "\"\\ud800\""), "`conversion_id`"),
        // Invalid UTF-8: an overlong '/', a surrogate encoded as UTF-8, a cut sequence.
        (with_bytes(b"\xc0\xaf"), "not UTF-8"),
        (with_bytes(b"\xed\xa0\x80"), "not UTF-8"),
        (b"{\"conversion_id\":\"c\xe2\x82".to_vec(), "not UTF-8"),
        (oversized.clone(), "over amqp.max_message_bytes"),
    ];
    env.publish_raw(&cases.iter().map(|(b, _)| b.clone()).collect::<Vec<_>>())
        .await;

    // Valid, if odd: delivered.
    let deep_unknown = {
        let mut v = with_raw("x_extra", &nested(100_000, "[", "]"));
        let text = String::from_utf8(v.clone()).expect("utf-8");
        v = text.replace("\"h\"", "\"deep\"").into_bytes();
        v
    };
    let valid: Vec<(Vec<u8>, &str, &str)> = vec![
        (deep_unknown, "deep", ""),
        (
            ev("sci", "approved", 0, json!({})).replace("\"offer_id\"", "\"payout\":1e5,\"offer_id\"").into_bytes(),
            "sci",
            "100000",
        ),
        (
            json!({"conversion_id": "leap", "status": "CONFIRMED", "updated_at": "2016-12-31T23:59:60Z",
                   "offer_id": "1", "affiliate_id": 2, "payout": "0.10"})
            .to_string()
            .into_bytes(),
            "leap",
            "0.10",
        ),
        (
            json!({"conversion_id": "year0", "status": 1, "updated_at": "0000-01-01T00:00:00Z",
                   "offer_id": 1, "affiliate_id": 2})
            .to_string()
            .into_bytes(),
            "year0",
            "",
        ),
        (
            json!({"conversion_id": "year9999", "status": "1", "updated_at": "9999-12-31 23:59:59.999999+14:00",
                   "offer_id": 1, "affiliate_id": "2", "sequence": i64::MAX})
            .to_string()
            .into_bytes(),
            "year9999",
            "",
        ),
    ];
    env.publish_raw(&valid.iter().map(|(b, _, _)| b.clone()).collect::<Vec<_>>())
        .await;
    env.publish(&[ev("after", "approved", 0, json!({}))]).await;

    let reqs = rx.wait_for(valid.len() + 1).await;
    let pg = env.pg().await;
    wait_count(&pg, "SELECT count(*) FROM rejected_messages", cases.len() as i64).await;
    let dead = env.dead_letters(cases.len()).await;
    daemon.stop().await;

    // Every valid one was delivered, with its exact payout.
    for (_, conversion, sum) in &valid {
        let req = reqs
            .iter()
            .find(|r| r.param("c").as_deref() == Some(*conversion))
            .unwrap_or_else(|| panic!("{conversion} was not delivered: {reqs:?}"));
        assert_eq!(req.param("sum").as_deref(), Some(*sum), "{conversion}");
    }
    assert!(reqs.iter().any(|r| r.param("c").as_deref() == Some("after")));

    // Each invalid one stored once, with its reason, the body as received (or its first 64 KiB).
    let stored = rows(
        &pg,
        "SELECT encode(sha256(body), 'hex'), reason, body_size::text, truncated::text,
                encode(body_sha256, 'hex')
         FROM rejected_messages",
    )
    .await;
    assert_eq!(stored.len(), cases.len(), "each stored exactly once");
    let hex = |b: &[u8]| {
        Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    };
    for (body, want) in &cases {
        let kept = if body.len() > MAX {
            &body[..64 * 1024]
        } else {
            &body[..]
        };
        let row = stored
            .iter()
            .find(|r| r[0].as_deref() == Some(hex(kept).as_str()))
            .unwrap_or_else(|| panic!("{want}: body of {} bytes not stored", body.len()));
        let reason = row[1].clone().unwrap_or_default();
        assert!(reason.contains(want), "reason {reason:?} should mention {want:?}");
        assert!(
            reason.len() < 2000,
            "a short reason, not the body: {} bytes",
            reason.len()
        );
        assert_eq!(row[2], Some(body.len().to_string()), "{want}");
    }
    let big = stored
        .iter()
        .find(|r| r[3].as_deref() == Some("true"))
        .expect("the oversized one");
    assert_eq!(big[2], Some(oversized.len().to_string()));
    assert_eq!(
        big[4].as_deref(),
        Some(hex(&oversized).as_str()),
        "SHA-256 of the whole body"
    );
    assert_eq!(
        count(&pg, "SELECT count(*) FROM rejected_messages WHERE truncated").await,
        1
    );

    // Dead-lettered: each body once, as published, with the stored reason.
    for (body, want) in &cases {
        let copies: Vec<&(Vec<u8>, String)> = dead.iter().filter(|(b, _)| b == body).collect();
        assert_eq!(copies.len(), 1, "{want}: dead-lettered once");
        assert!(copies[0].1.contains(want), "x-xpb-reason {:?}", copies[0].1);
    }
    assert_eq!(env.ready_messages(&env.cfg.amqp.queue).await, 0);
    assert_eq!(
        count(&pg, "SELECT count(*) FROM conversions").await,
        valid.len() as i64 + 1,
        "no rejected message left a conversion behind"
    );
}
