//! Retries from the deliveries table.

use std::time::Duration;

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn five_hundred_twice_then_ok_is_three_attempts_and_delivered() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/x")).await;
    rx.script([Reply::status(500), Reply::status(500)]);
    let daemon = env.start().await;
    env.publish(&[ev("c1", "approved", 0, json!({"event_id": "e1"}))])
        .await;
    let reqs = rx.wait_for(3).await;
    let keys: Vec<Option<&str>> = reqs.iter().map(|r| r.header("idempotency-key")).collect();
    assert!(
        keys.iter().all(|k| *k == keys[0] && k.is_some()),
        "same key on every retry: {keys:?}"
    );
    let pg = env.pg().await;
    eventually("delivered after three attempts", || async {
        let r = rows(&pg, "SELECT state, attempts FROM deliveries").await;
        (r == vec![vec![Some("delivered".to_owned()), Some("3".to_owned())]]).then_some(())
    })
    .await;
    let codes = rows(
        &pg,
        "SELECT attempt, http_code, error_code FROM attempts ORDER BY attempt",
    )
    .await;
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(
        codes,
        vec![
            vec![s("1"), s("500"), s("http")],
            vec![s("2"), s("500"), s("http")],
            vec![s("3"), s("200"), None]
        ]
    );
    // The schedule (100 ms × 0.8–1.2, then 200 ms × 0.8–1.2) spaced the attempts.
    assert!(
        reqs[1].at - reqs[0].at >= Duration::from_millis(80),
        "{:?}",
        reqs[1].at - reqs[0].at
    );
    assert!(
        reqs[2].at - reqs[1].at >= Duration::from_millis(160),
        "{:?}",
        reqs[2].at - reqs[1].at
    );
    daemon.stop().await;
}

/// A retry, claimed from the table, takes the conversion id and status from its delivery's own
/// columns: a row whose stored event lacks them (as a later release will write it, and replicas
/// of this one must read it during a rolling upgrade) renders exactly as the first attempt did.
#[tokio::test]
async fn a_retry_renders_the_conversion_and_status_its_delivery_row_holds() {
    let mut env = Env::new().await;
    // Long enough to strip the stored event between the first attempt and the retry.
    env.cfg.delivery.retry_schedule = vec![ms(3_000)];
    let rx = Receiver::start().await;
    env.add_url(
        "1",
        &rx.url("/x?c={conversion_id}&s={status}&n={status_name}&k={clickid}"),
    )
    .await;
    rx.script([Reply::status(500)]);
    let daemon = env.start().await;
    env.publish(&[ev("c-7", "declined", 0, json!({"click_id": "k9"}))])
        .await;
    rx.wait_for(1).await;
    let pg = env.pg().await;
    // Once the first attempt is recorded and before the retry is claimed (no lease): a retry
    // claimed before the strip would render from the full event and prove nothing, so that
    // fails here instead.
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE attempts = 1 AND state = 'pending'",
        1,
    )
    .await;
    let stripped = pg
        .execute(
            "UPDATE deliveries SET event = event - '{conversion_id,status}'::text[]
             WHERE attempts = 1 AND lease_until IS NULL",
            &[],
        )
        .await
        .expect("the event stripped");
    assert_eq!(stripped, 1, "stripped before the retry was claimed");
    let reqs = rx.wait_for(2).await;
    let targets: Vec<&str> = reqs.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(targets, ["/x?c=c-7&s=3&n=declined&k=k9"; 2]);
    // The receiver answers before the recorder writes: wait for the second attempt's record.
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries
         WHERE attempts = 2 AND NOT event ? 'conversion_id' AND NOT event ? 'status'",
        1,
    )
    .await;
    assert_eq!(count(&pg, "SELECT count(*) FROM deliveries").await, 1);
    daemon.stop().await;
}

#[tokio::test]
async fn not_found_is_attempted_once_and_fails() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/x")).await;
    rx.script([Reply::status(404)]);
    let daemon = env.start().await;
    env.publish(&[ev("c1", "approved", 0, json!({}))]).await;
    let pg = env.pg().await;
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE state = 'failed' AND attempts = 1",
        1,
    )
    .await;
    daemon.stop().await;
    assert_eq!(rx.requests().len(), 1);
    let (code, out, err) = env.cli(&[
        "attempts",
        "--failed",
        "--format",
        "json",
        "--columns",
        "http_code,error,attempt",
    ]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        json,
        json!([{"http_code": 404, "error": "HTTP 404", "attempt": 1}])
    );
}

#[tokio::test]
async fn retry_after_is_honoured_and_clamped() {
    let mut env = Env::new().await;
    env.cfg.delivery.retry_schedule = vec![ms(200), ms(5000)];
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/x")).await;
    let mut asked = Reply::status(429);
    asked.retry_after = Some("1".into());
    let mut too_long = Reply::status(503);
    too_long.retry_after = Some("3600".into());
    rx.script([asked, too_long]);
    let daemon = env.start().await;
    env.publish(&[ev("c1", "approved", 0, json!({}))]).await;
    let reqs = rx.wait_for(3).await;
    let first_gap = reqs[1].at - reqs[0].at;
    let second_gap = reqs[2].at - reqs[1].at;
    assert!(
        first_gap >= Duration::from_millis(1000),
        "waited as told: {first_gap:?}"
    );
    assert!(
        first_gap < Duration::from_millis(4000),
        "not the clamp: {first_gap:?}"
    );
    assert!(
        second_gap >= Duration::from_millis(5000),
        "clamped to the last step: {second_gap:?}"
    );
    assert!(
        second_gap < Duration::from_millis(9000),
        "clamped, not an hour: {second_gap:?}"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn retries_live_in_postgres_and_survive_a_restart_with_nothing_unacked() {
    let RetryWaiting {
        env, rx, daemon, pg, ..
    } = retry_waiting(ms(1500), "/x", "approved").await;
    daemon.stop().await;
    // Stopping closed the channel: an unacked message would be back in the queue now.
    assert_eq!(
        env.ready_messages(&env.cfg.amqp.queue).await,
        0,
        "the message was acked while its retry waits"
    );
    let daemon = env.start().await;
    rx.wait_for(2).await;
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE state = 'delivered' AND attempts = 2",
        1,
    )
    .await;
    daemon.stop().await;
}

#[tokio::test]
async fn a_connection_closed_without_an_answer_is_retried_and_secrets_stay_out_of_errors() {
    let env = Env::new().await;
    // A receiver that drops the first connection after reading the request, then answers 200.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut n = 0;
        while let Ok((mut sock, _)) = listener.accept().await {
            n += 1;
            let mut buf = vec![0u8; 4096];
            let _ = sock.read(&mut buf).await;
            if n > 1 {
                let _ = sock
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            }
        }
    });
    env.add_url("1", &format!("http://{addr}/x?token=s3cret")).await;
    let daemon = env.start().await;
    env.publish(&[ev("c1", "approved", 0, json!({}))]).await;
    let pg = env.pg().await;
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE state = 'delivered' AND attempts = 2",
        1,
    )
    .await;
    let first = rows(&pg, "SELECT error_code, error FROM attempts WHERE attempt = 1").await;
    assert_eq!(first[0][0].as_deref(), Some("connect"), "{first:?}");
    let error = first[0][1].clone().unwrap_or_default();
    assert!(
        !error.contains("s3cret"),
        "the URL's secret is not in the error text: {error}"
    );
    daemon.stop().await;
}
