//! Background tasks are supervised: one that dies makes the daemon unready and ends it with an
//! error (a non-zero exit for `run`); and a SIGTERM ends within `run.shutdown_timeout` even
//! while Postgres is unreachable and an outcome waits to be recorded.
//!
//! The fault is a real one: the poller's claim names a column that the test renames, so every
//! poll is refused by the server (an error that waiting cannot cure).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::child::{Daemon, terminate};
use crate::harness::proxy::{Proxy, target_of, through};
use crate::harness::*;

const BREAK_THE_CLAIM: &str = "ALTER TABLE deliveries RENAME COLUMN retry_base TO retry_base_gone";

#[tokio::test]
async fn a_poller_refused_by_the_schema_makes_the_daemon_unready_and_end_with_an_error() {
    let env = Env::new().await;
    let mut daemon = env.start().await;
    let base = daemon.http();
    eventually("ready", || async { ready(base).await.then_some(()) }).await;

    let health = std::sync::Arc::clone(&daemon.daemon.as_ref().expect("running").health);
    env.pg()
        .await
        .batch_execute(BREAK_THE_CLAIM)
        .await
        .expect("rename");
    let ended = tokio::time::timeout(DEADLINE, daemon.daemon.take().expect("running").wait())
        .await
        .expect("the daemon ends by itself");
    let err = ended.expect_err("a dead task ends the daemon with an error");
    assert!(err.to_string().contains("poller failed"), "{err:#}");
    assert!(!health.ready(), "a dead task leaves the daemon unready");
    assert_eq!(health.failed(), Some("poller"));
}

#[tokio::test]
async fn run_exits_non_zero_when_a_task_dies() {
    let env = Env::new().await;
    let mut daemon = Daemon::spawn(&env, &[]);
    daemon.wait_for_line(&["consuming"]).await;
    env.pg()
        .await
        .batch_execute(BREAK_THE_CLAIM)
        .await
        .expect("rename");
    let started = Instant::now();
    let status = loop {
        if let Ok(Some(status)) = daemon.child.try_wait() {
            break status;
        }
        assert!(started.elapsed() < DEADLINE, "the daemon did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(1), "{status:?}");
}

#[tokio::test]
async fn sigterm_while_postgres_is_unreachable_ends_within_the_shutdown_timeout() {
    let mut env = Env::new().await;
    let limit = Duration::from_secs(3);
    env.cfg.run.shutdown_timeout = ms(limit.as_millis() as u64);
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/x?c={conversion_id}")).await;
    // The answer comes after the database is gone: its record can only wait.
    let mut slow = Reply::status(200);
    slow.delay = Duration::from_secs(2);
    rx.script([slow]);
    let proxy = Proxy::start(target_of(&env.cfg.database.url, 5432)).await;
    env.cfg.database.url = through(&env.cfg.database.url, &proxy);
    let mut daemon = Daemon::spawn(&env, &[]);
    daemon.wait_for_line(&["consuming"]).await;
    env.publish(&[ev("c1", "approved", 0, json!({}))]).await;
    rx.wait_for(1).await;

    proxy.cut();
    let asked = Instant::now();
    let status = terminate(&mut daemon.child).await;
    let took = asked.elapsed();
    assert!(
        took < limit + Duration::from_millis(1500),
        "SIGTERM took {took:?} with a shutdown timeout of {limit:?}"
    );
    assert!(status.success(), "{status:?}");
}
