//! `redeliver`: send again as a new attempt with the same idempotency key; refuse what
//! a newer status superseded (unless --force) and what cannot be pending.

use serde_json::json;

use crate::harness::*;

/// The id of the delivery of `conversion` whose event has `status`.
async fn delivery(pg: &tokio_postgres::Client, conversion: &str, status: &str) -> String {
    let sql =
        format!("SELECT id FROM deliveries WHERE conversion_id = '{conversion}' AND status = '{status}'");
    count(pg, &sql).await.to_string()
}

/// Asserts a refused command: exit 1, one line on stderr that mentions each of `want`.
fn assert_refused((code, out, err): (i32, String, String), want: &[&str]) {
    assert_eq!(code, 1, "refused: {out}{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    for w in want {
        assert!(err.contains(w), "{err:?} should mention {w:?}");
    }
}

#[tokio::test]
async fn a_delivered_delivery_is_sent_again_as_a_new_attempt_with_the_same_key() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    let url_id = env.add_url("1", &rx.url("/x?c={conversion_id}")).await;
    let daemon = env.start().await;
    env.publish(&[
        ev("keyed", "approved", 0, json!({"event_id": "e1"})),
        ev("plain", "approved", 0, json!({})),
    ])
    .await;
    let pg = env.pg().await;
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
        2,
    )
    .await;
    let keyed = delivery(&pg, "keyed", "approved").await;
    let plain = delivery(&pg, "plain", "approved").await;

    for id in [&keyed, &plain] {
        let (code, out, err) = env.cli_async(&["redeliver", "--delivery", id]).await;
        assert_eq!(code, 0, "{err}");
        assert_eq!(
            out.trim(),
            format!("delivery {id} queued to be sent again as attempt 2")
        );
    }
    let reqs = rx.wait_for(4).await;
    let keys = |c: &str| -> Vec<String> {
        reqs.iter()
            .filter(|r| r.param("c").as_deref() == Some(c))
            .map(|r| r.header("idempotency-key").unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(keys("keyed"), vec![format!("e1:{url_id}"); 2]);
    assert_eq!(
        keys("plain"),
        vec![plain.clone(); 2],
        "no event_id: the delivery id"
    );
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE state = 'delivered' AND attempts = 2",
        2,
    )
    .await;
    let attempts = rows(
        &pg,
        &format!("SELECT attempt, http_code FROM attempts WHERE delivery_id = {keyed} ORDER BY id"),
    )
    .await;
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(attempts, vec![vec![s("1"), s("200")], vec![s("2"), s("200")]]);
    daemon.stop().await;
}

#[tokio::test]
async fn superseded_pending_and_disabled_are_refused_and_force_sends_an_older_status() {
    let mut env = Env::new().await;
    // The approved delivery's retry waits a minute: it stays pending while the test runs.
    env.cfg.delivery.retry_schedule = vec![ms(60_000)];
    let rx = Receiver::start().await;
    let url_id = env.add_url("1", &rx.url("/x?s={status_name}")).await;
    rx.script([Reply::status(200), Reply::status(500)]);
    let daemon = env.start().await;
    let pg = env.pg().await;
    env.publish(&[ev("c1", "pending", 0, json!({}))]).await;
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
        1,
    )
    .await;
    env.publish(&[ev("c1", "approved", 1, json!({}))]).await;
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE state = 'pending' AND attempts = 1",
        1,
    )
    .await;
    let pending = delivery(&pg, "c1", "pending").await;
    let approved = delivery(&pg, "c1", "approved").await;

    // Delivered, but a newer status to the same URL exists.
    let refused = env.cli_async(&["redeliver", "--delivery", &pending]).await;
    assert_refused(refused, &[&approved, "superseded", "--force"]);
    // Forced, but the newer one is pending, and only one may be.
    let refused = env
        .cli_async(&["redeliver", "--delivery", &pending, "--force"])
        .await;
    assert_refused(refused, &[&approved, "is pending"]);
    let refused = env.cli_async(&["redeliver", "--delivery", &approved]).await;
    assert_refused(refused, &["already pending"]);
    let refused = env.cli_async(&["redeliver", "--delivery", "999999"]).await;
    assert_refused(refused, &["no delivery with id 999999"]);

    // Declined supersedes the waiting approved delivery and is sent at once.
    env.publish(&[ev("c1", "declined", 2, json!({}))]).await;
    rx.wait_for(3).await;
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
        2,
    )
    .await;
    let refused = env.cli_async(&["redeliver", "--delivery", &approved]).await;
    assert_refused(refused, &["superseded", "--force"]);
    let (code, out, err) = env
        .cli_async(&["redeliver", "--delivery", &approved, "--force"])
        .await;
    assert_eq!(
        (code, out.trim()),
        (
            0,
            format!("delivery {approved} queued to be sent again as attempt 2").as_str()
        ),
        "{err}"
    );
    let reqs = rx.wait_for(4).await;
    assert_eq!(reqs[3].param("s").as_deref(), Some("approved"));
    assert_eq!(reqs[3].header("idempotency-key"), Some(approved.as_str()));
    wait_count(
        &pg,
        &format!(
            "SELECT count(*) FROM deliveries WHERE id = {approved} AND state = 'delivered' AND attempts = 2"
        ),
        1,
    )
    .await;

    let (code, _, err) = env.cli_async(&["urls", "disable", &url_id.to_string()]).await;
    assert_eq!(code, 0, "{err}");
    let declined = delivery(&pg, "c1", "declined").await;
    let refused = env.cli_async(&["redeliver", "--delivery", &declined]).await;
    assert_refused(refused, &["disabled", "urls enable"]);
    daemon.stop().await;
    assert_eq!(rx.requests().len(), 4, "nothing refused was sent");
}

#[tokio::test]
async fn failed_with_offer_queues_only_that_offers_failed_deliveries() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/o1")).await;
    let url2 = env.add_url("2", &rx.url("/o2")).await;
    rx.script([Reply::status(404), Reply::status(404)]);
    let daemon = env.start().await;
    env.publish(&[
        ev("c1", "approved", 0, json!({})),
        ev("c2", "approved", 0, json!({"offer_id": 2})),
    ])
    .await;
    let pg = env.pg().await;
    wait_count(&pg, "SELECT count(*) FROM deliveries WHERE state = 'failed'", 2).await;

    let (code, out, err) = env
        .cli_async(&["redeliver", "--failed", "--offer", "2", "--since", "2999-01-01"])
        .await;
    assert_eq!(
        (code, out.trim()),
        (0, "queued 0 failed deliveries to be sent again"),
        "{err}"
    );
    let (code, out, err) = env
        .cli_async(&["redeliver", "--failed", "--offer", "1", "--since", "1h"])
        .await;
    assert_eq!(
        (code, out.trim()),
        (0, "queued 1 failed delivery to be sent again"),
        "{err}"
    );
    assert_eq!(
        count(
            &pg,
            "SELECT count(*) FROM deliveries WHERE state = 'failed' AND conversion_id = 'c2'"
        )
        .await,
        1,
        "the other offer's delivery stays failed"
    );
    let reqs = rx.wait_for(3).await;
    assert_eq!(reqs[2].target, "/o1");
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE conversion_id = 'c1' AND state = 'delivered' AND attempts = 2",
        1,
    )
    .await;

    // A failed delivery whose URL is disabled is skipped, and says so.
    let (code, _, err) = env.cli_async(&["urls", "disable", &url2.to_string()]).await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = env.cli_async(&["redeliver", "--failed"]).await;
    assert_eq!(
        (code, out.trim()),
        (
            0,
            "queued 0 failed deliveries to be sent again; skipped 1 (1 URL disabled)"
        ),
        "{err}"
    );
    daemon.stop().await;
    assert_eq!(rx.requests().len(), 3);
}

/// The schedule restarts from the redelivery ([`Job::schedule_attempt`]).
#[tokio::test]
async fn a_redelivered_failed_delivery_gets_the_whole_retry_schedule_again() {
    let mut env = Env::new().await;
    env.cfg.delivery.retry_schedule = vec![ms(100), ms(100)];
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/x")).await;
    // Three attempts fail; after the redelivery two more fail and the third succeeds.
    rx.script((0..5).map(|_| Reply::status(500)));
    let daemon = env.start().await;
    env.publish(&[ev("c1", "approved", 0, json!({}))]).await;
    let pg = env.pg().await;
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE state = 'failed' AND attempts = 3",
        1,
    )
    .await;
    let id = delivery(&pg, "c1", "approved").await;
    let (code, out, err) = env.cli_async(&["redeliver", "--delivery", &id]).await;
    assert_eq!(
        (code, out.trim()),
        (
            0,
            format!("delivery {id} queued to be sent again as attempt 4").as_str()
        ),
        "{err}"
    );
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE state = 'delivered' AND attempts = 6",
        1,
    )
    .await;
    let numbers = rows(&pg, "SELECT attempt FROM attempts ORDER BY id").await;
    let want: Vec<Vec<Option<String>>> = (1..=6).map(|n| vec![Some(n.to_string())]).collect();
    assert_eq!(numbers, want, "attempt numbers keep counting up");
    daemon.stop().await;
}
