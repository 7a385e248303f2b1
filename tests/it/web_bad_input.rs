//! Regression tests: inputs that once panicked a handler or reached Postgres (500) are named
//! 400s — huge spans, times Postgres cannot store, crafted cursors, NUL in a URL listing.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::web_api::Web;

fn assert_names(status: u16, v: &Value, param: &str, what: &str) {
    assert_eq!(status, 400, "{what}: {v}");
    let message = v["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with(&format!("parameter `{param}`")),
        "{what}: {message}"
    );
}

#[tokio::test]
async fn huge_spans_and_unstorable_times_are_400s_naming_the_parameter() {
    let w = Web::start().await;
    let url_id = w.env.add_url("o0", "http://x.test/p").await;
    w.seed(url_id, "c1", 3, "2026-01-01T00:00:00Z").await;
    let cursor = URL_SAFE_NO_PAD.encode("o|-8000000000000000000|1");
    for (q, param) in [
        ("from=100000000d", "from"),
        ("to=100000000d", "to"),
        ("from=-5000-01-01", "from"),
        ("to=3000000d", "to"),
        ("from=0000-06-01", "from"),
        (&format!("cursor={cursor}") as &str, "cursor"),
    ] {
        let (status, v) = w.json("GET", &format!("/api/v1/attempts?{q}"), None).await;
        assert_names(status, &v, param, q);
    }

    let body = r#"{"offer_ids":["1"],"from":"100000000d"}"#;
    let (status, v) = w.json("POST", "/api/v1/links", Some(body)).await;
    assert_names(status, &v, "from", body);

    let (status, v) = w
        .json(
            "POST",
            "/api/v1/links",
            Some(r#"{"offer_ids":["o0"],"last":"30d"}"#),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let raw = v["url"]
        .as_str()
        .and_then(|u| u.rsplit("/s/").next())
        .expect("address");
    for q in ["from=100000000d", "to=3000000d", "from=-5000-01-01"] {
        for path in ["", "/attempts.csv"] {
            let r = w
                .http
                .get(format!("{}/s/{raw}{path}?{q}", w.base))
                .send()
                .await
                .expect("partner request");
            let status = r.status().as_u16();
            let text = r.text().await.expect("body");
            assert_eq!(status, 400, "{path}?{q}: {text}");
            assert!(text.contains(q.split('=').next().unwrap_or("")), "{text}");
        }
    }
    // A rolling window longer than the calendar holds is no bound, not an error.
    let (status, v) = w
        .json(
            "POST",
            "/api/v1/links",
            Some(r#"{"offer_ids":["o0"],"last":"3000000d"}"#),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let raw = v["url"]
        .as_str()
        .and_then(|u| u.rsplit("/s/").next())
        .expect("address");
    let r = w
        .http
        .get(format!("{}/s/{raw}", w.base))
        .send()
        .await
        .expect("partner");
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn a_url_listing_refuses_an_offer_id_postgres_cannot_hold() {
    let w = Web::start().await;
    let long = "x".repeat(129);
    for q in [
        "offer_id=%00",
        "offer_id=a%0Ab",
        &format!("offer_id={long}") as &str,
    ] {
        let (status, v) = w.json("GET", &format!("/api/v1/urls?{q}"), None).await;
        assert_names(status, &v, "offer_id", q);
    }
    let (status, v) = w.json("GET", "/api/v1/urls?offer_id=o0", None).await;
    assert_eq!((status, v.as_array().map(Vec::len)), (200, Some(0)), "{v}");
}
