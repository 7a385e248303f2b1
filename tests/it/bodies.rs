//! Delivery: "the response body is read up to a cap (slow-drip and endless bodies must not hold a
//! slot past the total timeout); the first KiB stored". Receivers here are raw TCP servers that
//! send a 200 head and then a body one byte at a time, or a body that never ends.

use std::time::Duration;

use serde_json::json;

use crate::harness::raw::{Answer, RawServer};
use crate::harness::*;

#[tokio::test]
async fn a_slow_drip_body_ends_at_the_timeout_and_frees_the_host_slot() {
    let mut env = Env::new().await;
    let timeout = Duration::from_millis(1000);
    env.cfg.delivery.timeout = ms(1000);
    env.cfg.delivery.connect_timeout = ms(500);
    // One request at a time to this host (and in all): the second delivery can only start
    // when the first attempt has let go of its slot.
    env.cfg.delivery.per_host_concurrency = 1;
    env.cfg.delivery.concurrency = 1;
    env.cfg.delivery.retry_schedule = vec![ms(100)];
    // The first connection drips a byte every 200 ms, forever; every later one answers 200.
    let server = RawServer::start("127.0.0.1", |n| {
        if n == 0 {
            Answer::Drip {
                every: Duration::from_millis(200),
            }
        } else {
            Answer::ok()
        }
    })
    .await;
    env.add_url("1", &server.url("/x?c={conversion_id}")).await;
    let daemon = env.start().await;
    env.publish(&[
        ev("c1", "approved", 0, json!({})),
        ev("c2", "approved", 0, json!({})),
    ])
    .await;
    let reqs = server.wait_for(2).await;
    assert_eq!(reqs[0].n, 0, "the first request is the one that drips");
    let pg = env.pg().await;
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
        2,
    )
    .await;
    daemon.stop().await;

    // The dripping answer was cut off at the total timeout (plus scheduling slack on a busy
    // machine), not after its 1,000,000 bytes (which would take days).
    let cut = server.wait_ended(0).await;
    let held = cut.at - reqs[0].at;
    assert!(
        held >= timeout / 2 && held < timeout + Duration::from_millis(1500),
        "the dripping connection was held {held:?} (timeout {timeout:?})"
    );
    assert!(cut.body_bytes < 20, "{} bytes dripped", cut.body_bytes);
    // The second request had to wait for the slot and got it as soon as the drip was cut.
    let waited = reqs[1].at - reqs[0].at;
    assert!(
        waited >= timeout / 2 && waited < timeout + Duration::from_millis(1500),
        "the next request to the host started {waited:?} after the dripping one"
    );

    // The cut attempt is recorded as a timeout (retryable: delivered on its second attempt).
    let dripped = reqs[0]
        .target
        .split("c=")
        .nth(1)
        .expect("conversion in the target")
        .to_owned();
    let attempts = rows(
        &pg,
        &format!(
            "SELECT attempt::text, error_code, duration_ms, http_code::text, response_excerpt
             FROM attempts WHERE conversion_id = '{dripped}' ORDER BY attempt"
        ),
    )
    .await;
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0][0..2], [s("1"), s("timeout")], "{attempts:?}");
    let duration: u64 = attempts[0][2].as_deref().unwrap_or("0").parse().expect("ms");
    assert!(
        (1000..2500).contains(&duration),
        "the timed-out attempt took {duration} ms"
    );
    // The status line came, and some of the body: both are kept with the timeout.
    assert_eq!(attempts[0][3], s("200"), "{attempts:?}");
    let dripped_excerpt = attempts[0][4].clone().unwrap_or_default();
    assert!(
        !dripped_excerpt.is_empty() && dripped_excerpt.chars().all(|c| c == 'x'),
        "the bytes that came are the excerpt: {attempts:?}"
    );
    assert_eq!(attempts[1][0..2], [s("2"), None], "{attempts:?}");
    assert_eq!(
        count(
            &pg,
            "SELECT count(*) FROM attempts WHERE error_code IS NULL AND http_code = 200"
        )
        .await,
        2,
        "both deliveries ended with a 200"
    );
}

#[tokio::test]
async fn an_endless_body_is_cut_at_max_response_bytes_and_its_first_kib_stored() {
    let mut env = Env::new().await;
    env.cfg.delivery.timeout = ms(5000);
    env.cfg.delivery.lease = ms(15000);
    env.cfg.delivery.max_response_bytes = 4096;
    // A pattern whose every KiB differs, so the stored excerpt shows where it was taken.
    let pattern: Vec<u8> = (0..3000u32)
        .flat_map(|i| format!("{i:05},").into_bytes())
        .collect();
    let plan_pattern = pattern.clone();
    let server = RawServer::start("127.0.0.1", move |_| Answer::Endless {
        pattern: plan_pattern.clone(),
    })
    .await;
    env.add_url("1", &server.url("/x?c={conversion_id}")).await;
    let daemon = env.start().await;
    env.publish(&[ev("c1", "approved", 0, json!({}))]).await;
    server.wait_for(1).await;
    let pg = env.pg().await;
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
        1,
    )
    .await;
    // The client hung up once it had its cap: the server's writes fail well before the timeout.
    let ended = server.wait_ended(0).await;
    daemon.stop().await;

    let attempt = rows(
        &pg,
        "SELECT http_code::text, error_code, response_excerpt, duration_ms FROM attempts",
    )
    .await;
    assert_eq!(attempt.len(), 1, "one attempt: {attempt:?}");
    assert_eq!(
        attempt[0][0..2],
        [s("200"), None],
        "a 200 whose body was cut is delivered"
    );
    let excerpt = attempt[0][2].clone().unwrap_or_default();
    assert_eq!(
        excerpt.as_bytes(),
        &pattern[..1024],
        "the excerpt is the body's first KiB"
    );
    let duration: u64 = attempt[0][3].as_deref().unwrap_or("0").parse().expect("ms");
    assert!(
        duration < 2500,
        "cut at the byte cap, not at the 5 s timeout: {duration} ms"
    );
    let reqs = server.requests();
    assert!(
        ended.at - reqs[0].at < Duration::from_millis(2500),
        "the connection was dropped {:?} after the request",
        ended.at - reqs[0].at
    );
    // What the server managed to write is bounded by socket buffers, not by its endlessness.
    assert!(
        ended.body_bytes < 64 * 1024 * 1024,
        "{} bytes written",
        ended.body_bytes
    );
    assert_eq!(server.requests().len(), 1, "not retried");
}
