//! Two daemons on the same queue and database: every accepted event fires exactly once per URL.

use std::collections::HashMap;

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn two_daemons_fire_each_event_exactly_once_per_url() {
    let mut env = Env::new().await;
    env.cfg.amqp.batch_size = 16;
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/a?k={event_id}")).await;
    env.add_url("1", &rx.url("/b?k={event_id}")).await;
    let first = env.start().await;
    let second = env.start().await;
    let mut events = Vec::new();
    for c in 0..60 {
        // Each conversion goes pending → approved, published far enough apart in order that both
        // are accepted whichever replica decides each.
        events.push(ev(
            &format!("conv-{c}"),
            "pending",
            0,
            json!({"event_id": format!("conv-{c}-p")}),
        ));
    }
    env.publish(&events).await;
    let pg = env.pg().await;
    wait_count(&pg, "SELECT count(*) FROM conversions", 60).await;
    let approvals: Vec<String> = (0..60)
        .map(|c| {
            ev(
                &format!("conv-{c}"),
                "approved",
                10,
                json!({"event_id": format!("conv-{c}-a")}),
            )
        })
        .collect();
    env.publish(&approvals).await;
    let expected = 60 * 2 * 2;
    rx.wait_for(expected).await;
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE state IN ('delivered', 'superseded')",
        expected as i64,
    )
    .await;
    let announced = |r: &Running| {
        let text = r.daemon.as_ref().expect("running").metrics.encode();
        text.lines()
            .find(|l| l.starts_with("xpb_events_consumed_total{outcome=\"announced\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let (a, b) = (announced(&first), announced(&second));
    assert_eq!(a + b, 120, "every event announced once across both");
    assert!(a > 0 && b > 0, "both replicas took part: {a} and {b}");
    first.stop().await;
    second.stop().await;
    let mut per_key: HashMap<String, usize> = HashMap::new();
    for r in rx.requests() {
        let path = r.target.split('?').next().unwrap_or_default().to_owned();
        *per_key
            .entry(format!("{path} {}", r.param("k").unwrap_or_default()))
            .or_default() += 1;
    }
    assert_eq!(per_key.len(), expected, "every (event, URL) arrived");
    let repeated: Vec<_> = per_key.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "sent more than once: {repeated:?}");
}
