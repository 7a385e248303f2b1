//! Faults: the daemon as a child process that the nemesis kills and restarts, cuts of the
//! broker and database connections through the harness's proxies, and real restarts of the
//! servers, each logged with the time it happened.

use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::Params;
use crate::harness::Env;
use crate::harness::proxy::{Proxy, through};

/// The daemon's retry schedule in the run, and so the attempts a failed delivery has made.
const SCHEDULE: &str = "200ms,400ms,800ms,1s,1s,1s";
pub const ATTEMPTS: i32 = 7;

/// What happened, when.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    pub kills: Vec<Instant>,
    /// Times the database was away (cut or restarting).
    pub db_outages: Vec<(Instant, Instant)>,
    pub broker_outages: Vec<(Instant, Instant)>,
    pub broker_restarts: usize,
    pub db_restarts: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Kill,
    CutBroker,
    CutDb,
    RestartBroker,
    RestartDb,
}

/// The faults in a random order, each after a random pause, spread over `span`.
pub fn plan(rng: &mut StdRng, p: &Params, span: Duration) -> Vec<(Duration, Action)> {
    let mut actions: Vec<Action> = std::iter::repeat_n(Action::Kill, p.kills)
        .chain(std::iter::repeat_n(Action::CutBroker, p.broker_cuts))
        .chain(std::iter::repeat_n(Action::CutDb, p.db_cuts))
        .chain(std::iter::repeat_n(Action::RestartBroker, p.broker_restarts))
        .chain(std::iter::repeat_n(Action::RestartDb, p.db_restarts))
        .collect();
    actions.shuffle(rng);
    let gap = span.as_secs_f64() / (actions.len() + 1) as f64;
    actions
        .into_iter()
        .map(|a| (Duration::from_secs_f64(gap * rng.random_range(0.3..1.2)), a))
        .collect()
}

/// Carries out the plan; returns the daemon and the proxies for the settling phase.
pub async fn run(
    plan: Vec<(Duration, Action)>,
    mut daemon: DaemonProcess,
    broker: Proxy,
    db: Proxy,
    faults: Arc<Mutex<Faults>>,
    seed: u64,
) -> (DaemonProcess, Proxy, Proxy) {
    let mut rng = StdRng::seed_from_u64(seed);
    for (pause, action) in plan {
        tokio::time::sleep(pause).await;
        daemon.restart_if_exited();
        let outage = Duration::from_millis(rng.random_range(500..2500));
        match action {
            Action::Kill => {
                daemon.kill();
                faults.lock().expect("lock").kills.push(Instant::now());
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..500))).await;
                daemon.spawn();
            }
            Action::CutBroker => {
                let from = Instant::now();
                broker.cut();
                tokio::time::sleep(outage).await;
                broker.restore();
                faults
                    .lock()
                    .expect("lock")
                    .broker_outages
                    .push((from, Instant::now()));
            }
            Action::CutDb => {
                let from = Instant::now();
                db.cut();
                tokio::time::sleep(outage).await;
                db.restore();
                faults
                    .lock()
                    .expect("lock")
                    .db_outages
                    .push((from, Instant::now()));
            }
            Action::RestartBroker => {
                let from = Instant::now();
                restart("XPB_CHAOS_BROKER_RESTART", DEFAULT_BROKER_RESTART).await;
                let mut f = faults.lock().expect("lock");
                f.broker_outages.push((from, Instant::now()));
                f.broker_restarts += 1;
            }
            Action::RestartDb => {
                let from = Instant::now();
                restart("XPB_CHAOS_DB_RESTART", DEFAULT_DB_RESTART).await;
                let mut f = faults.lock().expect("lock");
                f.db_outages.push((from, Instant::now()));
                f.db_restarts += 1;
            }
        }
    }
    daemon.restart_if_exited();
    (daemon, broker, db)
}

const DEFAULT_BROKER_RESTART: &str = "rabbitmqctl -q stop && rabbitmq-server -detached \
     && until rabbitmq-diagnostics -q ping >/dev/null 2>&1; do sleep 1; done";
const DEFAULT_DB_RESTART: &str = "pg_ctlcluster --skip-systemctl-redirect \
     \"$(ls /etc/postgresql | sort -V | tail -n 1)\" main restart -m fast \
     && until pg_isready -q -h 127.0.0.1; do sleep 1; done";

/// Runs a restart command (from `var`, else the default) and waits for it to finish.
async fn restart(var: &str, default: &str) {
    let command = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    println!("chaos: restarting: {command}");
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&command)
        .env(
            "PATH",
            format!("{}:/usr/sbin:/sbin", std::env::var("PATH").unwrap_or_default()),
        )
        .status()
        .await
        .expect("sh runs");
    assert!(
        status.success(),
        "`{command}` failed ({status}); set {var} to this machine's command"
    );
}

/// The real binary, restarted after each kill; each life logs to a file of its own.
pub struct DaemonProcess {
    command: std::process::Command,
    logs: PathBuf,
    child: Option<Child>,
    lives: usize,
    exits: Vec<String>,
}

impl DaemonProcess {
    pub fn new(env: &Env, broker: &Proxy, db: &Proxy, logs: PathBuf) -> DaemonProcess {
        std::fs::create_dir_all(&logs).expect("log folder");
        let mut command = env.command();
        let amqp = through(&env.cfg.amqp.url, broker);
        let database = through(&env.cfg.database.url, db);
        command
            .arg("run")
            .env("AMQP_URL", amqp)
            .env("DATABASE_URL", database)
            .env("XPB_DELIVERY__ALLOW_PRIVATE_NETWORKS", "false")
            .env("XPB_DELIVERY__ALLOW_CIDRS", "127.0.0.1/32")
            .env("XPB_DELIVERY__RETRY_SCHEDULE", SCHEDULE)
            .env("XPB_DELIVERY__CONNECT_TIMEOUT", "500ms")
            .env("XPB_DELIVERY__TIMEOUT", "1s")
            .env("XPB_DELIVERY__LEASE", "3s")
            .env("XPB_DELIVERY__POLL_INTERVAL", "100ms")
            .env("XPB_RUN__SHUTDOWN_TIMEOUT", "5s")
            .stdout(Stdio::null());
        DaemonProcess {
            command,
            logs,
            child: None,
            lives: 0,
            exits: Vec::new(),
        }
    }

    pub fn spawn(&mut self) {
        self.lives += 1;
        let log =
            std::fs::File::create(self.logs.join(format!("daemon-{}.log", self.lives))).expect("log file");
        self.command.stderr(log);
        self.child = Some(self.command.spawn().expect("the daemon starts"));
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
    }

    /// A daemon that ended by itself is an error the report shows; it is restarted.
    pub fn restart_if_exited(&mut self) {
        if let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            self.exits
                .push(format!("life {} ended by itself: {status}", self.lives));
            self.spawn();
        }
    }

    pub fn exits(&self) -> Vec<String> {
        self.exits.clone()
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 30 s).
    pub async fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("a daemon runs");
        crate::harness::child::terminate(&mut child).await
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A database client, waiting for the server (it may be restarting).
pub async fn connect_retrying(url: &str) -> tokio_postgres::Client {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match tokio_postgres::connect(url, tokio_postgres::NoTls).await {
            Ok((client, conn)) => {
                tokio::spawn(conn);
                return client;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "the database did not come back: {e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}
