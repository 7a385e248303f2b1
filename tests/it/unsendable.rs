//! Requests that can never be sent are refused early or recorded once, never retried for two
//! days (issue 8, fault 4 and the security probe's findings).

use serde_json::json;

use crate::harness::raw::{Answer, RawServer};
use crate::harness::*;

/// Regression: a line break in `event_id` made an Idempotency-Key header no client can build;
/// the event was accepted and every attempt recorded `connect` and retried.
#[tokio::test]
async fn an_event_id_with_a_line_break_is_rejected_naming_the_field() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/x?c={conversion_id}")).await;
    let daemon = env.start().await;
    let bad = ev(
        "c-bad",
        "approved",
        0,
        json!({"event_id": "e-1\r\nX-Injected: 1"}),
    );
    env.publish(&[
        bad.clone(),
        ev("c-good", "approved", 0, json!({"event_id": "e-2"})),
    ])
    .await;
    let req = rx.wait_for(1).await.remove(0);
    assert_eq!(req.param("c").as_deref(), Some("c-good"));
    let pg = env.pg().await;
    wait_count(&pg, "SELECT count(*) FROM rejected_messages", 1).await;
    let dead = env.dead_letters(1).await;
    daemon.stop().await;
    let reason = rows(&pg, "SELECT reason FROM rejected_messages").await[0][0]
        .clone()
        .unwrap_or_default();
    assert!(
        reason.contains("`event_id`") && reason.contains("control characters"),
        "{reason}"
    );
    assert_eq!(dead[0].0, bad.as_bytes());
    assert_eq!(
        count(&pg, "SELECT count(*) FROM deliveries").await,
        1,
        "only the valid event fired"
    );
    assert_eq!(rx.requests().len(), 1);
}

/// Regression: a redirect to `file:` or `gopher:` (with follow_redirects) was recorded
/// `connect` and retried. It is recorded `redirects` with the 3xx code, and not retried.
#[tokio::test]
async fn a_redirect_to_another_scheme_fails_once_as_redirects() {
    let env = Env::new().await;
    let follow = |a: &mut cross_postback::cli::AddUrl| a.follow_redirects = true;
    let mut servers = Vec::new();
    for location in ["file:///etc/passwd", "gopher://127.0.0.1:70/1"] {
        let server = RawServer::start("127.0.0.1", move |_| Answer::redirect(302, location)).await;
        env.add_url_with("1", &server.url("/r?c={conversion_id}"), follow)
            .await;
        servers.push(server);
    }
    let daemon = env.start().await;
    env.publish(&[ev("c1", "approved", 0, json!({}))]).await;
    let pg = env.pg().await;
    wait_count(&pg, "SELECT count(*) FROM deliveries WHERE state = 'failed'", 2).await;
    daemon.stop().await;
    assert_eq!(
        rows(
            &pg,
            "SELECT d.attempts::text, a.http_code::text, a.error_code
             FROM deliveries d JOIN attempts a ON a.delivery_id = d.id ORDER BY d.id"
        )
        .await,
        vec![vec![s("1"), s("302"), s("redirects")]; 2]
    );
    for server in &servers {
        assert_eq!(server.requests().len(), 1, "asked once, not retried");
    }
}
