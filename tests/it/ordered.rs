//! Ordered mode (`amqp.mode = "ordered"`) with three replicas of the real binary: the events of
//! a conversion are decided in publish order whichever replica runs them, also when the replica
//! active on the shards is killed mid-stream; shared mode for comparison; switching modes.

use std::collections::HashMap;

use serde_json::json;

use crate::harness::child::Daemon;
use crate::harness::*;

const ORDERED: [(&str, &str); 2] = [("XPB_AMQP__MODE", "ordered"), ("XPB_AMQP__SHARDS", "4")];

/// `n` replicas in `mode`, each started once the one before consumes (the first subscribed
/// is the active consumer of every shard).
async fn replicas(env: &Env, settings: &[(&str, &str)], n: usize) -> Vec<Daemon> {
    let mut all = Vec::new();
    for _ in 0..n {
        let mut d = Daemon::spawn(env, settings);
        d.wait_for_line(&["consuming"]).await;
        all.push(d);
    }
    all
}

/// Publishes the lines with the `publish` command (which sets `x-conversion-id`).
async fn publish(env: &Env, lines: &[String]) {
    let path = std::env::temp_dir().join(format!("xpb-ordered-{}.jsonl", uuid::Uuid::new_v4()));
    std::fs::write(&path, lines.join("\n") + "\n").expect("write events");
    let (code, _, err) = env
        .cli_async(&["publish", path.to_str().expect("utf-8 path")])
        .await;
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, 0, "publish failed: {err}");
}

/// The statuses each conversion's requests carried, in arrival order.
fn seen(rx: &Receiver) -> HashMap<String, Vec<String>> {
    let mut by: HashMap<String, Vec<String>> = HashMap::new();
    for r in rx.requests() {
        let (c, s) = (r.param("c").unwrap_or_default(), r.param("s").unwrap_or_default());
        by.entry(c).or_default().push(s);
    }
    by
}

/// Pending then Approved for each of `n` conversions, back to back.
fn pairs(n: usize) -> Vec<String> {
    (0..n)
        .flat_map(|c| {
            let id = format!("conv-{c}");
            [
                ev(&id, "pending", 0, json!({})),
                ev(&id, "approved", 1, json!({})),
            ]
        })
        .collect()
}

async fn stop_all(daemons: Vec<Daemon>) {
    for d in daemons {
        assert!(d.terminate().await.success(), "a replica did not stop cleanly");
    }
}

#[tokio::test]
async fn three_ordered_replicas_send_pending_then_approved_in_order_once_each() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/p?c={conversion_id}&s={status_name}"))
        .await;
    let daemons = replicas(&env, &ORDERED, 3).await;
    let consumers = crate::harness::broker::rabbitmqctl(&["list_consumers", "-q", "queue_name"]).await;
    for shard in 0..4 {
        let name = format!("{}.{shard}", env.cfg.amqp.queue);
        let n = consumers.lines().filter(|l| l.trim() == name).count();
        assert_eq!(n, 3, "every replica consumes shard {shard}");
    }
    let n = 150;
    publish(&env, &pairs(n)).await;
    rx.wait_for(2 * n).await;
    let pg = env.pg().await;
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
        2 * n as i64,
    )
    .await;
    stop_all(daemons).await;
    let by = seen(&rx);
    assert_eq!(by.len(), n);
    for (c, statuses) in &by {
        assert_eq!(statuses, &["pending", "approved"], "conversion {c}");
    }
    assert_eq!(
        count(&pg, "SELECT count(*) FROM deliveries").await,
        2 * n as i64,
        "none dropped as stale"
    );
}

/// The same workload in shared mode: how many Pendings are dropped as stale depends on timing,
/// so it is reported, not asserted; every Approved (always the newest) is sent once.
#[tokio::test]
async fn three_shared_replicas_may_drop_pendings_as_stale_reported() {
    let mut env = Env::new().await;
    env.cfg.amqp.batch_size = 16;
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/p?c={conversion_id}&s={status_name}"))
        .await;
    let daemons = replicas(&env, &[], 3).await;
    let n = 150;
    publish(&env, &pairs(n)).await;
    let pg = env.pg().await;
    wait_count(
        &pg,
        "SELECT count(*) FROM conversions WHERE status = 'approved'",
        n as i64,
    )
    .await;
    wait_count(&pg, "SELECT count(*) FROM deliveries WHERE state = 'pending'", 0).await;
    stop_all(daemons).await;
    let by = seen(&rx);
    let approved = by
        .values()
        .filter(|s| s.iter().filter(|x| *x == "approved").count() == 1)
        .count();
    assert_eq!(approved, n, "every Approved sent once");
    let pendings = by
        .values()
        .filter(|s| s.first().map(String::as_str) == Some("pending"))
        .count();
    let out_of_order = by
        .values()
        .filter(|s| s.as_slice() == ["approved", "pending"])
        .count();
    assert_eq!(
        out_of_order, 0,
        "a stale Pending is never sent after its Approved"
    );
    println!(
        "shared mode, 3 replicas: {pendings} of {n} Pendings sent, {} dropped as stale",
        n - pendings
    );
}

/// Longer back-to-back histories: every event is decided in order, none is stale, and each
/// makes its delivery (superseding still applies to ones not yet sent).
#[tokio::test]
async fn ordered_long_histories_drop_no_event_as_stale() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/p?c={conversion_id}&s={status_name}"))
        .await;
    let daemons = replicas(&env, &ORDERED, 3).await;
    let history = [
        "pending", "approved", "declined", "approved", "declined", "approved",
    ];
    let (n, len) = (40, history.len());
    let lines: Vec<String> = (0..n)
        .flat_map(|c| {
            let id = format!("conv-{c}");
            history
                .iter()
                .enumerate()
                .map(move |(i, s)| ev(&id, s, i as i64, json!({})))
        })
        .collect();
    publish(&env, &lines).await;
    let pg = env.pg().await;
    wait_count(&pg, "SELECT count(*) FROM deliveries", (n * len) as i64).await;
    wait_count(&pg, "SELECT count(*) FROM deliveries WHERE state = 'pending'", 0).await;
    stop_all(daemons).await;
    let per = rows(&pg, "SELECT conversion_id, count(*) FROM deliveries GROUP BY 1").await;
    assert_eq!(per.len(), n);
    assert!(
        per.iter().all(|r| r[1].as_deref() == Some("6")),
        "every event made its delivery: {per:?}"
    );
    assert_order(&seen(&rx), &history);
}

/// The order rule of the chaos checker: a receiver never sees an older event of a conversion
/// after a newer one (repeats of one event are allowed, at least once is the guarantee).
fn assert_order(by: &HashMap<String, Vec<String>>, history: &[&str]) {
    for (c, statuses) in by {
        let mut at = 0;
        for s in statuses {
            // The earliest place of `s` at or after `at` (a repeat stays where it is).
            let found = (at..history.len()).find(|i| history[*i] == s);
            match found {
                Some(i) => at = i,
                None => panic!("conversion {c}: {s} arrived after a newer event: {statuses:?}"),
            }
        }
    }
}

#[tokio::test]
async fn killing_the_active_replica_mid_stream_loses_nothing_and_keeps_order() {
    let mut env = Env::new().await;
    // Sends the killed replica had leased are taken over once their lease ends.
    env.cfg.delivery.lease = ms(2000);
    env.cfg.delivery.timeout = ms(500);
    env.cfg.delivery.connect_timeout = ms(250);
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/p?c={conversion_id}&s={status_name}"))
        .await;
    let mut daemons = replicas(&env, &ORDERED, 3).await;
    let history = ["pending", "approved", "declined", "approved"];
    let n = 300;
    let lines: Vec<String> = (0..n)
        .flat_map(|c| {
            let id = format!("conv-{c}");
            history
                .iter()
                .enumerate()
                .map(move |(i, s)| ev(&id, s, i as i64, json!({})))
        })
        .collect();
    let publisher = {
        let env_cmd = env.command();
        let path = std::env::temp_dir().join(format!("xpb-ordered-{}.jsonl", uuid::Uuid::new_v4()));
        std::fs::write(&path, lines.join("\n") + "\n").expect("write events");
        let mut cmd = env_cmd;
        cmd.arg("publish").arg(&path);
        tokio::spawn(output_within_deadline(cmd))
    };
    // The first replica is active on every shard: kill it once requests flow.
    rx.wait_for(100).await;
    let pg = env.pg().await;
    let killed_at = rows(&pg, "SELECT now()::text").await[0][0].clone().expect("now");
    let killed = daemons.remove(0).kill().await;
    assert!(!killed.is_empty(), "the killed replica had logged");
    let (code, _, err) = publisher.await.expect("publisher task");
    assert_eq!(code, 0, "publish failed: {err}");
    let total = (n * history.len()) as i64;
    wait_count(&pg, "SELECT count(*) FROM deliveries", total).await;
    wait_count(&pg, "SELECT count(*) FROM deliveries WHERE state = 'pending'", 0).await;
    stop_all(daemons).await;
    // The stream went on after the kill: another replica became active on the shards.
    let after = count(
        &pg,
        &format!("SELECT count(*) FROM deliveries WHERE created_at > '{killed_at}'"),
    )
    .await;
    assert!(after > 0, "nothing was decided after the kill");
    println!("ordered kill: {after} of {total} deliveries logged after the active replica was killed");
    // Lost: every event decided (none stale) and ended delivered or superseded, never failed.
    let failed = count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE state NOT IN ('delivered', 'superseded')",
    )
    .await;
    assert_eq!(failed, 0, "deliveries neither delivered nor superseded");
    let delivered = rows(
        &pg,
        "SELECT d.conversion_id, d.status FROM deliveries d WHERE d.state = 'delivered'",
    )
    .await;
    let by = seen(&rx);
    for r in &delivered {
        let (c, s) = (r[0].clone().unwrap_or_default(), r[1].clone().unwrap_or_default());
        assert!(
            by.get(&c).is_some_and(|v| v.contains(&s)),
            "{c} {s} delivered but never received"
        );
    }
    assert_eq!(by.len(), n, "every conversion reached the receiver");
    assert_order(&by, &history);
}

#[tokio::test]
async fn a_message_without_the_header_is_still_decided_and_counted() {
    let mut env = Env::new().await;
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/p?c={conversion_id}&s={status_name}"))
        .await;
    env.cfg.amqp.mode = cross_postback::config::AmqpMode::Ordered;
    env.cfg.amqp.shards = 2;
    let daemon = env.start().await;
    // The harness publishes without headers (to the ordered topology, declared from env.cfg).
    env.publish(&[ev("no-header", "approved", 0, json!({}))]).await;
    rx.wait_for(1).await;
    let metrics = daemon.daemon.as_ref().expect("running").metrics.encode();
    assert!(
        metrics.lines().any(|l| l == "xpb_unordered_messages_total 1"),
        "{metrics}"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn without_the_plugin_start_up_names_it() {
    let env = Env::new().await;
    let conn = cross_postback::amqp::connect(&env.cfg.amqp.url, "xpb-test bogus type")
        .await
        .expect("broker");
    let ch = conn.create_channel().await.expect("channel");
    // The same declaration as the hash exchange's, with a type no plugin provides.
    let name = format!("{}.bogus", env.cfg.amqp.queue);
    let e = cross_postback::amqp::declare_exchange(&ch, &name, "x-bogus-type", Default::default())
        .await
        .expect_err("an unknown exchange type is refused");
    let text = cross_postback::report::one_line(&e);
    assert!(
        text.contains("rabbitmq-plugins enable rabbitmq_consistent_hash_exchange") && text.contains(&name),
        "{text}"
    );
    let _ = conn.close(200, "bye".into()).await;
}

/// Shared → ordered → shared on a running deployment: each new replica binds its input and
/// unbinds the old one, the old replicas drain theirs and stop; every event is sent once.
#[tokio::test]
async fn switching_shared_to_ordered_and_back_loses_nothing() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/p?c={conversion_id}&s={status_name}"))
        .await;
    let mut ordered = env.cfg.clone();
    ordered.amqp.mode = cross_postback::config::AmqpMode::Ordered;
    ordered.amqp.shards = 2;
    let shards = [
        format!("{}.0", env.cfg.amqp.queue),
        format!("{}.1", env.cfg.amqp.queue),
    ];
    let batch = |name: &str| -> Vec<String> {
        (0..40)
            .map(|c| ev(&format!("{name}-{c}"), "approved", 0, json!({})))
            .collect()
    };
    let pg = env.pg().await;
    let delivered = "SELECT count(*) FROM deliveries WHERE state = 'delivered'";
    let shared = env.start().await;
    publish(&env, &batch("a")).await;
    let orderly = env.start_with(ordered).await;
    publish(&env, &batch("b")).await;
    wait_count(&pg, delivered, 80).await;
    assert_eq!(env.ready_messages(&env.cfg.amqp.queue).await, 0);
    shared.stop().await;
    publish(&env, &batch("c")).await;
    wait_count(&pg, delivered, 120).await;
    assert_eq!(
        env.ready_messages(&env.cfg.amqp.queue).await,
        0,
        "the shared queue gets nothing new"
    );
    let back = env.start().await;
    publish(&env, &batch("d")).await;
    wait_count(&pg, delivered, 160).await;
    orderly.stop().await;
    publish(&env, &batch("e")).await;
    wait_count(&pg, delivered, 200).await;
    for shard in &shards {
        assert_eq!(env.ready_messages(shard).await, 0, "{shard} gets nothing new");
    }
    back.stop().await;
    let by = seen(&rx);
    assert_eq!(by.len(), 200, "every conversion reached the receiver");
    assert!(by.values().all(|s| s == &["approved"]), "each sent once");
}

/// Throughput of 1 and 3 ordered replicas on this machine, printed, never asserted (run by
/// hand: `cargo test --test it ordered::throughput -- --ignored --nocapture`).
#[tokio::test]
#[ignore = "a measurement, not a check"]
async fn throughput_of_one_and_three_ordered_replicas() {
    for k in [1, 3] {
        let env = Env::new().await;
        let rx = Receiver::start().await;
        env.add_url("1", &rx.url("/p?c={conversion_id}&s={status_name}"))
            .await;
        let daemons = replicas(&env, &ORDERED, k).await;
        let n = 1000;
        let started = std::time::Instant::now();
        publish(&env, &pairs(n)).await;
        let pg = env.pg().await;
        wait_count(
            &pg,
            "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
            2 * n as i64,
        )
        .await;
        let took = started.elapsed().as_secs_f64();
        println!(
            "{k} replica(s): {} events in {took:.2} s = {:.0} events/s",
            2 * n,
            (2 * n) as f64 / took
        );
        stop_all(daemons).await;
    }
}

/// `publish --declare` with a shared-mode configuration against an ordered deployment adds the
/// work queue's binding but does not unbind the switch: ordered replicas keep getting events.
#[tokio::test]
async fn publish_declare_with_the_other_mode_does_not_move_traffic() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/p?c={conversion_id}&s={status_name}"))
        .await;
    let mut ordered = env.cfg.clone();
    ordered.amqp.mode = cross_postback::config::AmqpMode::Ordered;
    ordered.amqp.shards = 2;
    let daemon = env.start_with(ordered).await;
    let path = std::env::temp_dir().join(format!("xpb-ordered-{}.jsonl", uuid::Uuid::new_v4()));
    std::fs::write(&path, ev("declared", "approved", 0, json!({})) + "\n").expect("write");
    let (code, _, err) = env
        .cli_async(&["publish", "--declare", path.to_str().expect("utf-8 path")])
        .await;
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, 0, "{err}");
    rx.wait_for(1).await;
    assert_eq!(seen(&rx)["declared"], ["approved"]);
    daemon.stop().await;
}

/// A test's environment removes ordered mode's queues and exchanges with its own: they used to
/// stay on the broker run after run (24 quorum queues and 100 exchanges a suite).
#[tokio::test]
async fn an_ordered_test_leaves_no_queue_or_exchange_behind() {
    let mut env = Env::new().await;
    env.cfg.amqp.mode = cross_postback::config::AmqpMode::Ordered;
    env.cfg.amqp.shards = 2;
    let daemon = env.start().await;
    daemon.stop().await;
    let names = cross_postback::amqp::Names::of(&env.cfg.amqp);
    let conn = cross_postback::amqp::connect(&env.cfg.amqp.url, "xpb-test leftovers")
        .await
        .expect("broker");
    let queues: Vec<String> = names
        .shards
        .iter()
        .cloned()
        .chain([names.unordered.clone()])
        .collect();
    let exchanges = [names.switch.clone(), names.hash.clone(), names.unordered.clone()];
    for q in &queues {
        assert!(queue_exists(&conn, q).await, "{q} was declared");
    }
    for x in &exchanges {
        assert!(exchange_exists(&conn, x).await, "{x} was declared");
    }
    drop(env);
    for q in &queues {
        assert!(!queue_exists(&conn, q).await, "{q} is left on the broker");
    }
    for x in &exchanges {
        assert!(!exchange_exists(&conn, x).await, "{x} is left on the broker");
    }
    let _ = conn.close(200, "bye".into()).await;
}

/// Whether `queue` is on the broker (a passive declare, on a channel of its own: a refused one
/// closes it; so does [`exchange_exists`]).
async fn queue_exists(conn: &lapin::Connection, queue: &str) -> bool {
    let ch = conn.create_channel().await.expect("channel");
    let passive = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    ch.queue_declare(queue.into(), passive, Default::default())
        .await
        .is_ok()
}

async fn exchange_exists(conn: &lapin::Connection, exchange: &str) -> bool {
    let ch = conn.create_channel().await.expect("channel");
    let passive = lapin::options::ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    // A passive declare checks the name only; the kind is not compared.
    ch.exchange_declare(
        exchange.into(),
        lapin::ExchangeKind::Fanout,
        passive,
        Default::default(),
    )
    .await
    .is_ok()
}
