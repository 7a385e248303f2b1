//! Per-host isolation: "One slow or dead receiver must not starve the others: concurrency is bounded
//! globally and per host (host:port)."
//!
//! A hanging receiver (answers only after the total timeout) and a healthy one, both on
//! 127.0.0.1 but on different ports. The hanging host is saturated first; then a batch fires to
//! both. The assertions are structural, so a busy machine does not make them flaky: every
//! healthy request arrives before the first hanging attempt can have ended (its timeout), and
//! the hanging host never has more than its per-host share in flight. Broken isolation (one
//! limit for all hosts, a key of host without port, or a global limit the hanging host can
//! fill) pushes the healthy requests past that timeout. The healthy host's drain time is also
//! compared with its time alone (20% plus a small absolute slack).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::*;

const PER_HOST: usize = 2;
const K: usize = 12;

#[tokio::test]
async fn a_hanging_receiver_does_not_starve_a_healthy_one() {
    let mut env = Env::new().await;
    let timeout = Duration::from_millis(5000);
    env.cfg.delivery.timeout = ms(5000);
    env.cfg.delivery.connect_timeout = ms(1000);
    env.cfg.delivery.lease = ms(30_000);
    // The global limit is smaller than the hanging host's backlog: without a per-host limit
    // the hanging host would take every slot.
    env.cfg.delivery.concurrency = 4;
    env.cfg.delivery.per_host_concurrency = PER_HOST;
    env.cfg.delivery.retry_schedule = vec![ms(100)];
    // In-flight hanging sends are abandoned quickly at the end.
    env.cfg.run.shutdown_timeout = ms(500);
    let healthy = Receiver::start().await;
    let hanging = Receiver::start().await;
    let mut hang = Reply::status(200);
    hang.delay = Duration::from_secs(60);
    hanging.script(std::iter::repeat_n(hang, 100));
    assert_ne!(healthy.addr.port(), hanging.addr.port());

    env.add_url("solo", &healthy.url("/solo?c={conversion_id}")).await;
    env.add_url("hang", &hanging.url("/hang?c={conversion_id}")).await;
    env.add_url("both", &healthy.url("/both?c={conversion_id}")).await;
    env.add_url("both", &hanging.url("/hang?c={conversion_id}")).await;
    let daemon = env.start().await;
    let on = |offer: &str, prefix: &str| -> Vec<String> {
        (0..K)
            .map(|i| ev(&format!("{prefix}{i}"), "approved", 0, json!({"offer_id": offer})))
            .collect()
    };
    // Warm up the path (connections, statement caches) so the baseline is not a cold start.
    env.publish(&[on("solo", "warm")[0].clone()]).await;
    healthy.wait_for(1).await;

    // Alone: K events to the healthy receiver.
    let start = Instant::now();
    env.publish(&on("solo", "alone")).await;
    let alone = wait_path(&healthy, "/solo", K + 1).await;
    let alone_time = last(&alone) - start;

    // Saturate the hanging host: its per-host share in flight, the rest waiting for it.
    env.publish(&on("hang", "stuck")).await;
    let stuck = hanging.wait_for(PER_HOST).await;
    let first_hang = stuck[0].at;

    // Then a batch that fires to both.
    let start = Instant::now();
    env.publish(&on("both", "mixed")).await;
    let mixed = wait_path(&healthy, "/both", K).await;
    let last_healthy = last(&mixed);
    let mixed_time = last_healthy - start;

    assert!(
        last_healthy < first_hang + timeout,
        "the healthy host's requests waited for the hanging host's timeout: the last came {:?} \
         after the first hanging request (timeout {timeout:?})",
        last_healthy - first_hang
    );
    let hanging_in_flight = hanging.requests().iter().filter(|r| r.at <= last_healthy).count();
    assert_eq!(
        hanging_in_flight, PER_HOST,
        "the hanging host had exactly its per-host share of requests meanwhile"
    );
    let allowed = alone_time.mul_f64(1.2) + Duration::from_millis(1000);
    assert!(
        mixed_time <= allowed,
        "healthy drain time with a hanging neighbour {mixed_time:?} vs alone {alone_time:?}"
    );
    eprintln!("per-host: alone {alone_time:?}, with a hanging neighbour {mixed_time:?}");

    // All healthy deliveries of the mixed batch were delivered at their first attempt.
    let pg = env.pg().await;
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries d JOIN cross_postback_urls u ON u.id = d.url_id
         WHERE u.url LIKE '%/both%' AND d.state = 'delivered' AND d.attempts = 1",
        K as i64,
    )
    .await;
    daemon.stop().await;
}

/// Waits until `n` requests to `path` arrived; returns them.
async fn wait_path(rx: &Receiver, path: &str, n: usize) -> Vec<receiver::Req> {
    eventually(&format!("{n} requests to {path}"), || async {
        let r: Vec<_> = rx
            .requests()
            .into_iter()
            .filter(|r| r.target.starts_with(path))
            .collect();
        (r.len() >= n).then_some(r)
    })
    .await
}

fn last(reqs: &[receiver::Req]) -> Instant {
    reqs.iter().map(|r| r.at).max().expect("some requests")
}
