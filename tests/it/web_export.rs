//! The CSV exports over HTTP: RFC 4180 line breaks, and bounded so that clients that keep
//! exports open cannot take every connection of the web's pool.

use crate::web_api::Web;

#[tokio::test]
async fn exports_end_every_record_with_crlf() {
    let w = Web::start().await;
    let url_id = w.env.add_url("o0", "http://x.test/p").await;
    w.seed(url_id, "c1", 4, "2026-01-01T00:00:00Z").await;
    let (status, text) = w
        .call(
            "GET",
            "/api/v1/attempts?format=csv&from=2025-01-01&columns=conversion_id,notice",
            None,
        )
        .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        text.matches("\r\n").count(),
        5,
        "a header and four rows: {text:?}"
    );
    assert_eq!(text.matches('\n').count(), 5, "no bare LF: {text:?}");
    assert!(text.starts_with("conversion_id,notice\r\nc1,"), "{text:?}");
}
