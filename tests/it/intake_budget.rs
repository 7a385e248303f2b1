//! Memory: however large the messages queued before start, the daemon holds about
//! `prefetch` × `amqp.max_message_bytes` bytes of bodies at once, not `prefetch` messages.

use crate::harness::child::Daemon;
use crate::harness::*;

/// The daemon's peak resident memory (VmHWM), in bytes.
fn peak_rss(daemon: &Daemon) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.child.id()))
        .expect("the daemon's /proc status is readable");
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM in /proc/<pid>/status");
    kib * 1024
}

#[tokio::test]
async fn a_flood_of_large_messages_stays_within_the_byte_budget() {
    // Under the 1 MiB `max_message_size` that scripts/services gives the broker, and more of
    // them than the prefetch, so all the old code held (about 60 MiB) is far over the bound.
    const MESSAGES: usize = 80;
    const SIZE: usize = 960 * 1024;
    const MAX_MESSAGE_BYTES: usize = 64 * 1024;
    const PREFETCH: usize = 64;
    let env = Env::new().await;
    let settings = [
        ("XPB_AMQP__PREFETCH", "64"),
        ("XPB_AMQP__MAX_MESSAGE_BYTES", "65536"),
    ];
    let budget = (PREFETCH * MAX_MESSAGE_BYTES) as u64;
    // The binary's own footprint: idle, once consuming.
    let mut idle = Daemon::spawn(&env, &settings);
    idle.wait_for_line(&["consuming"]).await;
    let baseline = peak_rss(&idle);
    assert!(idle.terminate().await.success());

    // Oversized (so rejected), all queued before start: a prefetch of 64 lets every one in at
    // once (80 MiB), the budget four at a time.
    let bodies: Vec<Vec<u8>> = (0..MESSAGES).map(|i| vec![b'a' + (i % 26) as u8; SIZE]).collect();
    env.publish_raw(&bodies).await;
    drop(bodies);
    let mut daemon = Daemon::spawn(&env, &settings);
    daemon.wait_for_line(&["consuming"]).await;
    let pg = env.pg().await;
    wait_count(&pg, "SELECT count(*) FROM rejected_messages", MESSAGES as i64).await;
    let peak = peak_rss(&daemon);
    // Bodies arrive in frames and are copied once to be dead-lettered: room for that, plus
    // the budget and what the broker sent before it read a cancel (a few messages).
    let bound = baseline + 3 * budget + 8 * SIZE as u64;
    eprintln!(
        "peak RSS {} MiB, idle {} MiB, bound {} MiB",
        peak >> 20,
        baseline >> 20,
        bound >> 20
    );
    assert!(
        peak < bound,
        "peak RSS {} MiB over the bound {} MiB (idle {} MiB, budget {} MiB, all queued {} MiB)",
        peak >> 20,
        bound >> 20,
        baseline >> 20,
        budget >> 20,
        (MESSAGES * SIZE) >> 20
    );
    assert!(daemon.terminate().await.success());
    assert_eq!(
        env.ready_messages(&env.cfg.amqp.queue).await,
        0,
        "every message acked"
    );
}
