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

/// Each export holds a connection of the web's pool while it streams. Clients that open
/// exports and stop reading get at most half the pool; the next export is refused at once
/// with 503 (not left waiting for a connection), and the API keeps answering.
#[tokio::test]
async fn exports_at_once_are_bounded_and_the_api_keeps_answering() {
    let w = Web::start().await;
    let url_id = w.env.add_url("o0", "http://x.test/p").await;
    // Far more CSV than loopback's socket buffers hold, so an unread export stays open.
    w.seed(url_id, "c1", 200_000, "2026-01-01T00:00:00Z").await;
    let permits = cross_postback::web::state::export_permits(w.env.cfg.database.pool_size.clamp(2, 16));
    let export = || {
        w.http
            .get(format!("{}/api/v1/attempts?format=csv&from=2025-01-01", w.base))
            .bearer_auth(&w.token)
            .send()
    };
    let mut open = Vec::new();
    for _ in 0..permits {
        let res = export().await.expect("export");
        assert_eq!(res.status().as_u16(), 200);
        open.push(res); // headers read, body left unread
    }
    let refused = export().await.expect("export");
    assert_eq!(refused.status().as_u16(), 503);
    let body = refused.text().await.expect("body");
    assert!(
        body.contains("\"busy\"") && body.contains("too many CSV exports"),
        "{body}"
    );
    let (status, text) = w
        .call("GET", "/api/v1/attempts?limit=1&from=2025-01-01", None)
        .await;
    assert_eq!(status, 200, "{text}");
    // A client that goes away gives its export back.
    drop(open.pop());
    crate::harness::eventually("an export is allowed again", || async {
        let res = export().await.ok()?;
        (res.status().as_u16() == 200).then_some(())
    })
    .await;
}
