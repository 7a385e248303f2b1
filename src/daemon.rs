//! The daemon: migrate, declare the topology, then run intake, dispatch and the ops listener
//! until shutdown; then drain in order: stop consuming, finish or abandon sends, record, close.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use backon::BackoffBuilder;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::amqp::{self, AmqpError};
use crate::config::Config;
use crate::dispatch::{self, Dispatch};
use crate::guard::Guard;
use crate::intake::Intake;
use crate::ops::{self, Health, Metrics};
use crate::sender::Sender;
use crate::store;
use crate::store::dispatch::Job;

mod drain;
mod supervisor;

use drain::{drain_sends, plural};
use supervisor::Supervisor;

/// Recorder tasks writing attempt outcomes; two let one commit overlap the next batch.
const RECORDERS: usize = 2;

/// At shutdown, in-flight sends may use this share of `run.shutdown_timeout`; the records of
/// their outcomes get the rest.
const SENDS_SHARE: f64 = 0.8;

/// After the shutdown deadline, how long tasks get to notice it before they are aborted.
const GRACE: Duration = Duration::from_millis(250);

/// After a second signal, how long the outcomes of finished sends still get to be recorded.
const HURRIED_RECORDS: Duration = Duration::from_secs(2);

/// A started daemon.
pub struct Daemon {
    /// Where `/healthz`, `/readyz` and `/metrics` answer.
    pub http_addr: SocketAddr,
    /// Where the page and the API answer (`web.listen`), unless `web.enabled = false`.
    pub web_addr: Option<SocketAddr>,
    pub health: Arc<Health>,
    pub metrics: Metrics,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Daemon {
    /// Waits until the daemon has stopped: after `shutdown` was cancelled (`Ok`), or because
    /// a background task died (the error names it).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("daemon task panicked")?
    }
}

/// Prepares everything that can fail at start-up (pool, migrations, topology, listener), then
/// runs the daemon in the background until `shutdown` is cancelled.
pub async fn start(cfg: Config, shutdown: CancellationToken) -> anyhow::Result<Daemon> {
    start_abandonable(cfg, shutdown, CancellationToken::new()).await
}

/// [`start`], and once `shutdown` is cancelled, cancelling `abandon` (an operator's second
/// signal) stops waiting for the sends in flight: they are abandoned (their leases expire and
/// they are sent again) and the daemon ends with an error saying so.
pub async fn start_abandonable(
    cfg: Config,
    shutdown: CancellationToken,
    abandon: CancellationToken,
) -> anyhow::Result<Daemon> {
    let cfg = Arc::new(cfg);
    let pool = store::daemon_pool(&cfg.database.url, cfg.database.pool_size)?;
    let database = format!("database at {}", store::server_address(&cfg.database.url));
    let applied = retry_until(&shutdown, &database, || store::migrate(&pool)).await?;
    if !applied.is_empty() {
        tracing::info!("{}", store::migration_summary(&applied));
    }
    let broker = format!("broker at {}", amqp::server_address(&cfg.amqp.url));
    // Start-up reports each broker error itself, in one line (a refused login ends it): lapin's
    // own lines about the same failure, at ERROR, would only repeat it. On from here on.
    crate::telemetry::mute_broker_logs();
    retry_until(&shutdown, &broker, || declare(&cfg)).await?;
    crate::telemetry::unmute_broker_logs();

    // Everything stops on `stop`: cancelled by shutdown, or by the supervisor when a task dies.
    let stop = shutdown.child_token();
    // The ops listener stays up until the drain is over, so readiness can be seen false.
    let ops_stop = CancellationToken::new();
    let health = Arc::new(Health::default());
    health.set_database(true);
    let metrics = Metrics::default();
    let (http_addr, ops_server) = ops::serve(
        cfg.http_listen(),
        Arc::clone(&health),
        metrics.clone(),
        ops_stop.clone(),
    )
    .await?;
    tracing::info!(%http_addr, "ops listener up");

    let owner = Uuid::new_v4();
    let dispatch = build_dispatch(&cfg, owner, &pool, &metrics)?;
    // Jobs queue between intake (first attempts), the poller, the recorder and the senders.
    let (jobs_tx, jobs_rx) = mpsc::channel(cfg.delivery.concurrency.max(1) * 4);
    let intake = Intake {
        cfg: Arc::clone(&cfg),
        pool: pool.clone(),
        health: Arc::clone(&health),
        metrics: metrics.clone(),
        dispatch: Arc::clone(&dispatch),
        jobs: jobs_tx.clone(),
        owner,
    };
    let mut supervisor = Supervisor::new(Arc::clone(&health), stop.clone());
    supervisor.spawn("ops listener", async move {
        ops_server.await;
        Ok(())
    });
    // The page and the API stop with the ops listener, after the drain: a request in flight
    // (an export) is not cut by a shutdown that has time to spare.
    let web_addr = if cfg.web.enabled {
        let web_pool = crate::web::pool(&cfg)?;
        let (addr, server) = crate::web::serve(Arc::clone(&cfg), web_pool, ops_stop.clone()).await?;
        tracing::info!(%addr, "web listener up");
        supervisor.spawn("web listener", server);
        Some(addr)
    } else {
        None
    };
    let stops = Stops {
        stop,
        ops_stop,
        hurry: abandon,
    };
    let task = tokio::spawn(run(intake, dispatch, (jobs_tx, jobs_rx), stops, supervisor));
    Ok(Daemon {
        http_addr,
        web_addr,
        health,
        metrics,
        task,
    })
}

fn build_dispatch(
    cfg: &Config,
    owner: Uuid,
    pool: &deadpool_postgres::Pool,
    metrics: &Metrics,
) -> anyhow::Result<Arc<Dispatch>> {
    let d = &cfg.delivery;
    let sender = Sender::new(
        Guard::new(d.allow_private_networks, cfg.allow_cidrs()),
        d.connect_timeout.0,
        d.timeout.0,
        d.max_response_bytes,
    )?;
    Ok(Arc::new(Dispatch::new(
        cfg,
        owner,
        pool.clone(),
        metrics.clone(),
        sender,
    )))
}

type Jobs = (mpsc::Sender<Job>, mpsc::Receiver<Job>);

/// What the daemon's run stops on.
struct Stops {
    /// Everything stops: shutdown, or a task that died.
    stop: CancellationToken,
    /// The ops listener, after the drain.
    ops_stop: CancellationToken,
    /// A second signal: stop waiting for sends in flight.
    hurry: CancellationToken,
}

/// Runs the daemon's tasks under the supervisor until `stop`, then drains them in order, all
/// within `run.shutdown_timeout`: stop consuming and claiming, finish (or abandon) the sends,
/// record their outcomes, close.
async fn run(
    intake: Intake,
    dispatch: Arc<Dispatch>,
    (jobs_tx, jobs_rx): Jobs,
    stops: Stops,
    mut sup: Supervisor,
) -> anyhow::Result<()> {
    let cfg = Arc::clone(&intake.cfg);
    let pool = intake.pool.clone();
    let tracker = TaskTracker::new();
    let abandon = CancellationToken::new();
    spawn_tasks(
        &mut sup,
        intake,
        &dispatch,
        (jobs_tx, jobs_rx),
        &stops.stop,
        &tracker,
        &abandon,
    );
    sup.watch().await;

    let limit = cfg.run.shutdown_timeout.0;
    let started = Instant::now();
    let deadline = after(started, limit);
    let sends_until = after(started, limit.mul_f64(SENDS_SHARE));
    let hurried = drain_sends(&mut sup, &tracker, &abandon, &stops.hurry, (started, sends_until)).await;
    // After a second signal, the outcomes of the sends that did finish still get a moment.
    let record_until = match hurried {
        Some(_) => deadline.min(Instant::now() + HURRIED_RECORDS),
        None => deadline,
    };
    let recorded = tokio::select! {
        done = sup.wait_for(&["recorder", "intake", "poller"], record_until.into()) => done,
        _ = stops.hurry.cancelled(), if hurried.is_none() => false,
    };
    if !recorded {
        tracing::warn!("attempt records could not be written before the shutdown timeout");
    }
    dispatch.halt.cancel();
    stops.ops_stop.cancel();
    let result = sup.finish(GRACE).await;
    pool.close();
    tracing::info!("stopped");
    match hurried {
        Some(n) if result.is_ok() => anyhow::bail!(
            "stopped by a second signal: {n} {} abandoned; {} sent again once {} lease expires",
            plural(n, "send", "sends"),
            plural(n, "it is", "they are"),
            plural(n, "its", "their"),
        ),
        _ => result,
    }
}

/// `start + span`, a span too long to add being as good as forever (a century).
fn after(start: Instant, span: Duration) -> Instant {
    store::dispatch::lease_end(start, span)
}

/// Spawns intake, the database monitor and dispatch's tasks under the supervisor.
fn spawn_tasks(
    sup: &mut Supervisor,
    intake: Intake,
    dispatch: &Arc<Dispatch>,
    (jobs_tx, jobs_rx): Jobs,
    stop: &CancellationToken,
    tracker: &TaskTracker,
    abandon: &CancellationToken,
) {
    let cfg = Arc::clone(&intake.cfg);
    let monitor = monitor_database(intake.pool.clone(), Arc::clone(&intake.health), stop.clone());
    sup.spawn("database monitor", async move {
        monitor.await;
        Ok(())
    });
    let intake_stop = stop.clone();
    sup.spawn("intake", async move {
        intake.run(intake_stop).await;
        Ok(())
    });
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let jobs_loop = dispatch::run_jobs(
        Arc::clone(dispatch),
        jobs_rx,
        done_tx,
        stop.clone(),
        abandon.clone(),
        tracker.clone(),
    );
    sup.spawn("jobs loop", async move {
        jobs_loop.await;
        Ok(())
    });
    let done_rx = Arc::new(tokio::sync::Mutex::new(done_rx));
    for _ in 0..RECORDERS {
        let recorder = dispatch::run_recorder(Arc::clone(dispatch), Arc::clone(&done_rx), jobs_tx.clone());
        sup.spawn("recorder", async move {
            recorder.await;
            Ok(())
        });
    }
    let poller = dispatch::run_poller(
        Arc::clone(dispatch),
        jobs_tx,
        cfg.delivery.poll_interval.0,
        stop.clone(),
    );
    sup.spawn("poller", async move { Ok(poller.await?) });
    let alerts = crate::alerts::run(
        dispatch.pool.clone(),
        Arc::clone(&cfg),
        dispatch.metrics.clone(),
        stop.clone(),
    );
    sup.spawn("alerts", alerts);
    sup.spawn(
        "data lifecycle",
        crate::lifecycle::run((*cfg).clone(), stop.clone()),
    );
}

/// Connects once and declares the topology; a clash with an existing declaration is fatal.
async fn declare(cfg: &Config) -> Result<(), AmqpError> {
    let conn = amqp::connect(&cfg.amqp.url, "cross-postback setup").await?;
    let channel = conn.create_channel().await?;
    let result = match amqp::declare_topology(&channel, &cfg.amqp).await {
        Ok(_) => amqp::unbind_other_mode(&channel, &cfg.amqp).await,
        Err(e) => Err(e),
    };
    amqp::close(&conn, &[&channel]).await;
    result
}

/// Keeps trying an operation that needs a service while the service is unreachable, saying
/// where it looks (`what` is "database at host:port"); a service that answered "no" (a missing
/// database, a refused login, a topology clash) fails at once with its own words.
async fn retry_until<T, E, F, Fut>(shutdown: &CancellationToken, what: &str, mut op: F) -> anyhow::Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut delays = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .without_max_times()
        .build();
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if is_fatal(&e) => return Err(anyhow::Error::new(e).context(format!("the {what}"))),
            Err(e) => {
                let delay = delays.next().unwrap_or(Duration::from_secs(5));
                let error = crate::report::one_line(&e);
                tracing::warn!(
                    retry_in_ms = delay.as_millis() as u64,
                    "waiting for the {what}: {error}"
                );
                tokio::select! {
                    _ = shutdown.cancelled() => anyhow::bail!("stopped while waiting for the {what}: {error}"),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// Whether waiting cannot help: only a service that could not be reached is waited for.
fn is_fatal(e: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(e) = e.downcast_ref::<AmqpError>() {
        return matches!(e, AmqpError::Topology { .. } | AmqpError::MissingPlugin { .. })
            || amqp::is_refused(e);
    }
    if let Some(e) = e.downcast_ref::<store::StoreError>() {
        return !e.is_unreachable();
    }
    false
}

async fn monitor_database(pool: deadpool_postgres::Pool, health: Arc<Health>, shutdown: CancellationToken) {
    loop {
        let up = matches!(
            tokio::time::timeout(Duration::from_secs(3), store::ping(&pool)).await,
            Ok(Ok(()))
        );
        health.set_database(up);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::after;

    #[test]
    fn a_shutdown_timeout_too_long_to_add_is_far_away_not_now() {
        let now = Instant::now();
        assert_eq!(after(now, Duration::from_secs(3)), now + Duration::from_secs(3));
        assert!(after(now, Duration::MAX) > now + Duration::from_secs(86_400 * 365));
    }
}
