//! The broker ends the daemon's session from its side (README, Reconnects: "any broker ...
//! error, a consumer cancelled by the server, or a closed channel ends the intake session"):
//! a channel closed by the server with the connection left open, and a connection closed by
//! an operator (`rabbitmqctl close_connection`). Each is noticed and logged, the daemon
//! reconnects, and an event published afterwards is delivered.
//!
//! Every daemon names its connection alike, and tests run in parallel against one broker: the
//! daemon runs as a child process, and its connection is found by the local port the process
//! holds, so only this test's connection is touched.

use serde_json::json;

use crate::harness::broker::{connection_from_port, local_ports_to, rabbitmqctl};
use crate::harness::child::Daemon;
use crate::harness::*;

/// A running daemon that delivered one event, and the local port of its broker connection.
async fn consuming(env: &Env, rx: &Receiver) -> (Daemon, u16) {
    env.add_url("1", &rx.url("/x?c={conversion_id}")).await;
    let mut daemon = Daemon::spawn(env, &[]);
    daemon.wait_for_line(&["consuming"]).await;
    env.publish(&[ev("before", "approved", 0, json!({}))]).await;
    rx.wait_for(1).await;
    let port = intake_port(&daemon).await;
    (daemon, port)
}

/// The daemon's one broker connection (the start-up one is closed by now).
async fn intake_port(daemon: &Daemon) -> u16 {
    let amqp_port = url::Url::parse(&amqp_url())
        .expect("amqp url")
        .port()
        .unwrap_or(5672);
    let pid = daemon.child.id();
    let port = eventually("the daemon's one broker connection", || async {
        let ports = local_ports_to(pid, amqp_port).await;
        (ports.len() == 1).then(|| ports[0])
    })
    .await;
    let (_, props) = eventually("the broker lists the connection", || async {
        connection_from_port(port).await
    })
    .await;
    assert!(
        props.contains("cross-postback intake"),
        "the connection on port {port} is the daemon's intake: {props}"
    );
    port
}

#[tokio::test]
async fn a_channel_closed_by_the_broker_is_noticed_and_the_daemon_reconnects() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    let (mut daemon, port) = consuming(&env, &rx).await;

    // Make the broker close the consuming channel (only it), as it does when a client acks a
    // delivery tag it never sent: 406 PRECONDITION_FAILED.
    assert_eq!(close_channels(port, 1).await, 1, "one consuming channel");

    let line = daemon.wait_for_line(&["reconnecting"]).await;
    assert!(
        line.contains("PRECONDITION_FAILED") || line.contains("unknown delivery tag"),
        "the log says why the session ended: {line}"
    );
    daemon.wait_for_line(&["consuming"]).await;
    let new_port = intake_port(&daemon).await;
    assert_ne!(new_port, port, "a new connection");

    env.publish(&[ev("after", "approved", 0, json!({}))]).await;
    let reqs = rx.wait_for(2).await;
    assert_eq!(reqs[1].param("c").as_deref(), Some("after"));
    let pg = env.pg().await;
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
        2,
    )
    .await;
    daemon.kill().await;
    assert_eq!(rx.requests().len(), 2, "nothing sent twice");
}

#[tokio::test]
async fn a_closed_dead_letter_channel_is_noticed_at_once_and_nothing_is_lost() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    let (mut daemon, port) = consuming(&env, &rx).await;
    // The publishing channel (no consumer) is closed by the broker while idle: the connection's
    // events say so, and the session ends at once, with the broker's reason.
    assert_eq!(close_channels(port, 0).await, 1, "one publishing channel");
    let line = daemon.wait_for_line(&["reconnecting"]).await;
    assert!(
        line.contains("PRECONDITION_FAILED") || line.contains("unknown delivery tag"),
        "the log says why the session ended: {line}"
    );
    daemon.wait_for_line(&["consuming"]).await;
    assert_ne!(intake_port(&daemon).await, port, "a new connection");

    // An invalid message now finds a working dead-letter channel: stored once, dead-lettered.
    let invalid = b"{\"not\": \"an event\"}".to_vec();
    env.publish(&[String::from_utf8(invalid.clone()).expect("utf-8")])
        .await;
    env.publish(&[ev("after", "approved", 0, json!({}))]).await;
    let reqs = rx.wait_for(2).await;
    assert_eq!(reqs[1].param("c").as_deref(), Some("after"));

    let dead = env.dead_letters(1).await;
    assert_eq!(dead[0].0, invalid);
    let pg = env.pg().await;
    assert_eq!(count(&pg, "SELECT count(*) FROM rejected_messages").await, 1);
    daemon.kill().await;
    assert_eq!(
        env.ready_messages(&env.cfg.amqp.dead_letter_queue).await,
        0,
        "dead-lettered once"
    );
    assert_eq!(env.ready_messages(&env.cfg.amqp.queue).await, 0, "all acked");
}

#[tokio::test]
async fn a_connection_closed_by_an_operator_is_noticed_and_the_daemon_reconnects() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    let (mut daemon, port) = consuming(&env, &rx).await;
    let (pid, _) = connection_from_port(port).await.expect("listed");
    rabbitmqctl(&["close_connection", &pid, "xpb test closes it"]).await;

    let line = daemon.wait_for_line(&["reconnecting"]).await;
    assert!(
        line.contains("xpb test closes it") || line.contains("CONNECTION_FORCED"),
        "the log says why the session ended: {line}"
    );
    daemon.wait_for_line(&["consuming"]).await;
    assert_ne!(intake_port(&daemon).await, port, "a new connection");

    env.publish(&[ev("after", "approved", 0, json!({}))]).await;
    let reqs = rx.wait_for(2).await;
    assert_eq!(reqs[1].param("c").as_deref(), Some("after"));
    daemon.kill().await;
    assert_eq!(rx.requests().len(), 2, "nothing sent twice");
}

/// Makes the broker close the channels of the connection from local port `port` that have
/// `consumers` consumers: it injects, on the server side, an ack of a delivery tag the channel
/// never sent, which the broker answers by closing the channel (406 PRECONDITION_FAILED), not
/// the connection. Returns how many channels it closed.
async fn close_channels(port: u16, consumers: u32) -> usize {
    let erl = format!(
        "[Conn] = [C || C <- rabbit_networking:connections(), \
                        rabbit_reader:info(C, [peer_port]) =:= [{{peer_port, {port}}}]], \
         Chs = [Ch || Ch <- rabbit_channel:list(), \
                      rabbit_channel:info(Ch, [connection, consumer_count]) =:= \
                          [{{connection, Conn}}, {{consumer_count, {consumers}}}]], \
         [rabbit_channel:do(Ch, {{'basic.ack', 987654321, false}}) || Ch <- Chs], \
         length(Chs)."
    );
    let out = rabbitmqctl(&["eval", &erl]).await;
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("rabbitmqctl eval said {out:?}"))
}
