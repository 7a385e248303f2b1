//! The network guard, end to end: with the default configuration a loopback target is
//! refused before any request (literal address, a name that resolves to it, or a redirect hop),
//! recorded as `blocked` and not retried; `delivery.allow_cidrs` opens exactly what it lists.

use serde_json::json;

use crate::harness::raw::{Answer, RawServer};
use crate::harness::*;

/// The env's configuration with the guard as shipped: no private networks, no allow-list.
fn guarded(env: &Env, allow_cidrs: &[&str]) -> cross_postback::config::Config {
    let mut cfg = env.cfg.clone();
    cfg.delivery.allow_private_networks = false;
    cfg.delivery.allow_cidrs = allow_cidrs.iter().map(|c| c.parse().expect("a CIDR")).collect();
    cfg
}

/// (state, attempts) of each delivery, by id.
async fn deliveries(pg: &tokio_postgres::Client) -> Vec<Vec<Option<String>>> {
    rows(pg, "SELECT state, attempts::text FROM deliveries ORDER BY id").await
}

#[tokio::test]
async fn a_loopback_target_is_blocked_once_and_never_contacted() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    // 127.0.0.1 written as an address, and `localhost`, which the resolver turns into it.
    let literal = env.add_url("1", &rx.url("/literal?c={conversion_id}")).await;
    let by_name = env
        .add_url(
            "1",
            &format!("http://localhost:{}/name?c={{conversion_id}}", rx.addr.port()),
        )
        .await;
    let daemon = env.start_with(guarded(&env, &[])).await;
    env.publish(&[ev("c1", "approved", 0, json!({}))]).await;
    let pg = env.pg().await;
    wait_count(&pg, "SELECT count(*) FROM deliveries WHERE state = 'failed'", 2).await;
    daemon.stop().await;

    assert_eq!(
        deliveries(&pg).await,
        vec![vec![s("failed"), s("1")], vec![s("failed"), s("1")]],
        "refused by the guard: failed after one attempt, not retried"
    );
    let attempts = rows(
        &pg,
        "SELECT url_id::text, attempt::text, http_code::text, error_code, error
         FROM attempts ORDER BY url_id",
    )
    .await;
    assert_eq!(attempts.len(), 2, "one attempt row each: {attempts:?}");
    for (row, (url_id, host)) in attempts
        .iter()
        .zip([(literal, "127.0.0.1"), (by_name, "localhost")])
    {
        assert_eq!(row[0], Some(url_id.to_string()));
        assert_eq!(row[1], s("1"));
        assert_eq!(row[2], None, "no HTTP code: no request was made ({row:?})");
        assert_eq!(row[3], s("blocked"), "{host}: {row:?}");
        let error = row[4].clone().unwrap_or_default();
        assert!(
            error.contains(host) && error.contains("127.0.0.1") && error.contains("network guard"),
            "{host}: the error names the host and the address refused: {error}"
        );
    }
    assert!(
        rx.requests().is_empty(),
        "the receiver got no request: {:?}",
        rx.requests()
    );
    // The statistics view shows them as failures too.
    assert_eq!(
        count(
            &pg,
            "SELECT count(*) FROM cross_postback_stats WHERE http_code IS NULL AND error LIKE '%network guard%'"
        )
        .await,
        2
    );
}

#[tokio::test]
async fn allow_cidrs_opens_the_listed_range_only() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/x?c={conversion_id}")).await;
    // `localhost` may also resolve to ::1, which 127.0.0.1/32 does not open; so only the
    // literal address is used here.
    let daemon = env.start_with(guarded(&env, &["127.0.0.1/32"])).await;
    env.publish(&[ev("c1", "approved", 0, json!({}))]).await;
    let req = rx.wait_for(1).await.remove(0);
    assert_eq!(req.param("c").as_deref(), Some("c1"));
    let pg = env.pg().await;
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
        1,
    )
    .await;
    daemon.stop().await;
    assert_eq!(
        rows(&pg, "SELECT http_code::text, error_code FROM attempts").await,
        vec![vec![s("200"), None]]
    );

    // The same receiver with a list that does not cover it: refused.
    let env = Env::new().await;
    env.add_url("1", &rx.url("/x?c={conversion_id}")).await;
    let daemon = env
        .start_with(guarded(&env, &["127.0.0.2/32", "10.0.0.0/8"]))
        .await;
    env.publish(&[ev("c2", "approved", 0, json!({}))]).await;
    let pg = env.pg().await;
    wait_count(&pg, "SELECT count(*) FROM deliveries WHERE state = 'failed'", 1).await;
    daemon.stop().await;
    assert_eq!(
        rows(&pg, "SELECT http_code::text, error_code FROM attempts").await,
        vec![vec![None, s("blocked")]]
    );
    assert_eq!(rx.requests().len(), 1, "only c1 reached the receiver");
}

#[tokio::test]
async fn a_redirect_to_a_refused_address_is_blocked_at_that_hop() {
    let env = Env::new().await;
    // Only 127.0.0.1 is opened. The refused target listens on 127.0.0.2, another loopback
    // address, so a request that got past the guard would be seen there.
    let refused = RawServer::start("127.0.0.2", |_| Answer::ok()).await;
    let allowed = RawServer::start("127.0.0.1", |_| Answer::ok()).await;
    let to_refused = refused.url("/landing");
    let to_allowed = allowed.url("/landing");
    // Each URL has a first hop of its own, which answers 302 to its landing server.
    let hop = RawServer::start("127.0.0.1", move |_| Answer::redirect(302, &to_refused)).await;
    let good_hop = RawServer::start("127.0.0.1", move |_| Answer::redirect(302, &to_allowed)).await;
    let follow = |a: &mut cross_postback::cli::AddUrl| a.follow_redirects = true;
    let bad = env
        .add_url_with("1", &hop.url("/bad?c={conversion_id}"), follow)
        .await;
    let good = env
        .add_url_with("1", &good_hop.url("/good?c={conversion_id}"), follow)
        .await;
    let daemon = env.start_with(guarded(&env, &["127.0.0.1/32"])).await;
    env.publish(&[ev("c1", "approved", 0, json!({}))]).await;
    let pg = env.pg().await;
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE state IN ('failed', 'delivered')",
        2,
    )
    .await;
    daemon.stop().await;

    let by_url = |id: i64| format!("SELECT state, attempts::text FROM deliveries WHERE url_id = {id}");
    assert_eq!(
        rows(&pg, &by_url(bad)).await,
        vec![vec![s("failed"), s("1")]],
        "a refused hop fails the delivery without retries"
    );
    assert_eq!(rows(&pg, &by_url(good)).await, vec![vec![s("delivered"), s("1")]]);
    let bad_attempt = rows(
        &pg,
        &format!("SELECT error_code, error, url FROM attempts WHERE url_id = {bad}"),
    )
    .await;
    assert_eq!(bad_attempt.len(), 1, "{bad_attempt:?}");
    assert_eq!(bad_attempt[0][0], s("blocked"), "{bad_attempt:?}");
    let error = bad_attempt[0][1].clone().unwrap_or_default();
    assert!(error.contains("127.0.0.2"), "the refused hop is named: {error}");

    assert_eq!(
        hop.requests().len(),
        1,
        "the first hop was allowed and asked once"
    );
    assert!(
        refused.requests().is_empty(),
        "the refused address got no request: {:?}",
        refused.requests()
    );
    // The allowed redirect was followed to its end: the guard refused only the bad hop.
    assert_eq!(good_hop.requests().len(), 1);
    assert_eq!(allowed.requests().len(), 1);
    assert_eq!(allowed.requests()[0].target, "/landing");
    assert_eq!(allowed.requests()[0].method, "GET");
}
