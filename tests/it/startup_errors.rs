//! Start-up against services that answer "no": a missing database, a refused login or a refused
//! broker login stop the binary at once with the server's own words; only a server that cannot
//! be reached is waited for, and the wait names where it is.

use std::time::{Duration, Instant};

use crate::harness::child::{Daemon, terminate};
use crate::harness::*;

/// A loopback port nothing listens on (bound, then let go).
/// `env`'s database URL with another user, database or port.
fn database_url(env: &Env, user: Option<&str>, db: Option<&str>, port: Option<u16>) -> String {
    let mut url = url::Url::parse(&env.cfg.database.url).expect("test database URL parses");
    if let Some(user) = user {
        url.set_username(user).expect("a URL with a host takes a user");
    }
    if let Some(db) = db {
        url.set_path(db);
    }
    if let Some(port) = port {
        url.set_port(Some(port)).expect("a URL with a host takes a port");
    }
    url.to_string()
}

/// Runs `run` with `var=value`; it must stop by itself soon, non-zero, with one error line
/// that contains `want`.
async fn stops_at_once(env: &Env, var: &str, value: &str, want: &str) {
    let mut run = env.command();
    run.arg("run").env(var, value);
    let started = Instant::now();
    let (code, _, err) = output_within_deadline(run).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{var}: took {:?}; {err}",
        started.elapsed()
    );
    assert_ne!(code, 0, "{var}: {err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "one error line: {err}");
    assert!(errors[0].contains(want), "{want:?} in {err}");
    assert!(!err.contains("waiting for"), "not waited for: {err}");
}

#[tokio::test]
async fn a_missing_database_or_a_refused_login_stops_start_up_with_the_servers_words() {
    let env = Env::new().await;
    let missing = database_url(&env, None, Some("xpb_no_such_database"), None);
    stops_at_once(
        &env,
        "DATABASE_URL",
        &missing,
        "database \"xpb_no_such_database\" does not exist",
    )
    .await;
    let stranger = database_url(&env, Some("xpb_no_such_role"), None, None);
    stops_at_once(
        &env,
        "DATABASE_URL",
        &stranger,
        "role \"xpb_no_such_role\" does not exist",
    )
    .await;
    stops_at_once(&env, "DATABASE_URL", "mysql://u@127.0.0.1/db", "database.url").await;
}

#[tokio::test]
async fn a_refused_broker_login_stops_start_up() {
    let env = Env::new().await;
    let mut url = url::Url::parse(&env.cfg.amqp.url).expect("test broker URL parses");
    url.set_password(Some("not-the-password"))
        .expect("a URL with a host takes a password");
    stops_at_once(&env, "AMQP_URL", url.as_str(), "ACCESS_REFUSED").await;
    let (_, _, err) = {
        let mut run = env.command();
        run.arg("run").env("AMQP_URL", url.as_str());
        output_within_deadline(run).await
    };
    assert!(
        !err.contains("not-the-password"),
        "the password stays secret: {err}"
    );
    assert!(!err.contains("lapin"), "the client does not repeat it: {err}");
}

/// A server that cannot be reached may come up: the daemon waits, saying where it looks, and
/// a signal still stops it.
#[tokio::test]
async fn an_unreachable_database_or_broker_is_waited_for_naming_host_and_port() {
    let env = Env::new().await;
    // Held closed for the whole test: a port let go could be taken by a test beside this one.
    let (_bound, addr) = closed_port();
    let port = addr.port();
    let db = database_url(&env, None, None, Some(port));
    let broker = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    for (var, value, what) in [("DATABASE_URL", db, "database"), ("AMQP_URL", broker, "broker")] {
        let mut daemon = Daemon::spawn(&env, &[(var, value.as_str())]);
        let want = format!("waiting for the {what} at 127.0.0.1:{port}");
        daemon.wait_for_line(&[&want]).await;
        // Still waiting, not stopped: a second wait line comes.
        daemon.wait_for_line(&[&want]).await;
        let status = terminate(&mut daemon.child).await;
        let log = daemon.kill().await;
        assert!(
            status.code().is_some(),
            "{var}: stopped by the signal, not killed: {log:?}"
        );
    }
}
