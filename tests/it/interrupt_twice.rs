//! SIGINT while a send hangs: the daemon says what it waits for, and a second signal abandons
//! the send at once, exiting non-zero; the abandoned delivery's lease expires and it is sent
//! again, so nothing is lost.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

use crate::harness::child::Daemon;
use crate::harness::*;

fn interrupt(daemon: &Daemon) {
    kill(Pid::from_raw(daemon.child.id() as i32), Signal::SIGINT).expect("signal the daemon");
}

#[tokio::test]
async fn a_second_interrupt_abandons_a_hanging_send_and_nothing_is_lost() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    rx.script([Reply {
        delay: Duration::from_secs(120),
        ..Reply::status(200)
    }]);
    env.add_url("1", &rx.url("/x?s={status_name}")).await;
    // The send may take 8 s, the lease (at least twice that) 18 s, the stop 30 s.
    let slow = [
        ("XPB_DELIVERY__TIMEOUT", "8s"),
        ("XPB_DELIVERY__LEASE", "18s"),
        ("XPB_RUN__SHUTDOWN_TIMEOUT", "30s"),
    ];
    let mut daemon = Daemon::spawn(&env, &slow);
    daemon.wait_for_line(&["consuming"]).await;
    env.publish(&[ev("c1", "approved", 0, json!({}))]).await;
    rx.wait_for(1).await;

    interrupt(&daemon);
    daemon
        .wait_for_line(&["waiting up to 24s for 1 send", "interrupt again to abandon"])
        .await;
    let interrupted = Instant::now();
    interrupt(&daemon);
    let status = loop {
        if let Some(status) = daemon.child.try_wait().expect("the daemon can be waited for") {
            break status;
        }
        assert!(
            interrupted.elapsed() < Duration::from_secs(5),
            "still running after the second interrupt"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let log = daemon.kill().await;
    assert!(
        matches!(status.code(), Some(code) if code != 0),
        "exits by itself, non-zero: {status:?}; {log:#?}"
    );
    assert!(
        log.iter().any(|l| l.contains("1 send abandoned")),
        "the exit says why: {log:#?}"
    );
    assert!(
        !log.iter().any(|l| l.contains("could not be written")),
        "nothing else was left unrecorded: {log:#?}"
    );
    let pg = env.pg().await;
    assert_eq!(
        count(&pg, "SELECT count(*) FROM deliveries WHERE state = 'pending'").await,
        1,
        "the abandoned delivery is still to be sent"
    );

    // A fresh daemon sends it once the first one's lease has expired.
    let again = Daemon::spawn(&env, &[]);
    let requests = rx.wait_for(2).await;
    assert_eq!(requests[1].param("s").as_deref(), Some("approved"));
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
        1,
    )
    .await;
    drop(again);
}
