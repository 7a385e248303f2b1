//! One place that watches the daemon's background tasks. Each runs until the daemon stops; one
//! that ends before (an error, a panic, or a plain return) is a fault: readiness goes false
//! for good, everything stops, and the daemon ends with an error naming it. None is restarted:
//! a task that died may have left its channels and leases half-way, which only a fresh process
//! (and the leases' expiry) puts right.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::{Id, JoinError, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::ops::Health;

pub(super) struct Supervisor {
    tasks: JoinSet<anyhow::Result<()>>,
    running: HashMap<Id, &'static str>,
    failures: Vec<String>,
    health: Arc<Health>,
    stop: CancellationToken,
}

impl Supervisor {
    /// `stop` is what the tasks stop on; the supervisor cancels it when one of them dies.
    pub(super) fn new(health: Arc<Health>, stop: CancellationToken) -> Supervisor {
        Supervisor {
            tasks: JoinSet::new(),
            running: HashMap::new(),
            failures: Vec::new(),
            health,
            stop,
        }
    }

    pub(super) fn spawn<F>(&mut self, name: &'static str, task: F)
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let id = self.tasks.spawn(task).id();
        self.running.insert(id, name);
    }

    /// Watches until `stop` is cancelled, by shutdown or by a task that died.
    pub(super) async fn watch(&mut self) {
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return,
                Some(ended) = self.tasks.join_next_with_id() => self.ended(ended),
            }
        }
    }

    /// Waits, until `deadline` at most, for every task named in `names` to end; returns whether
    /// they did. Any other task that ends meanwhile is noted too.
    pub(super) async fn wait_for(&mut self, names: &[&str], deadline: Instant) -> bool {
        while self.running.values().any(|n| names.contains(n)) {
            match tokio::time::timeout_at(deadline, self.tasks.join_next_with_id()).await {
                Ok(Some(ended)) => self.ended(ended),
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
        true
    }

    /// Gives the tasks still running `grace` to end, aborts the rest, and reports every task
    /// that died.
    pub(super) async fn finish(mut self, grace: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + grace;
        if !self
            .wait_for(&self.running.values().copied().collect::<Vec<_>>(), deadline)
            .await
        {
            let left: Vec<&str> = self.running.values().copied().collect();
            tracing::warn!(?left, "tasks still running at the shutdown deadline; aborted");
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
        }
        if self.failures.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("{}", self.failures.join("; "))
        }
    }

    fn ended(&mut self, ended: Result<(Id, anyhow::Result<()>), JoinError>) {
        let (id, fault) = match ended {
            Ok((id, Ok(()))) if self.stop.is_cancelled() => (id, None),
            Ok((id, Ok(()))) => (id, Some("ended unexpectedly".to_owned())),
            Ok((id, Err(e))) => (
                id,
                Some(format!("failed: {}", crate::report::one_line(e.as_ref()))),
            ),
            Err(e) if e.is_cancelled() => (e.id(), None),
            Err(e) => (e.id(), Some("panicked".to_owned())),
        };
        let name = self.running.remove(&id).unwrap_or("a task");
        if let Some(fault) = fault {
            tracing::error!(task = name, "{fault}; the daemon stops");
            self.failures.push(format!("{name} {fault}"));
            self.health.set_failed(name);
            self.stop.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use super::Supervisor;
    use crate::ops::Health;

    fn ready_health() -> Arc<Health> {
        let health = Arc::new(Health::default());
        health.set_broker(true);
        health.set_database(true);
        health
    }

    #[tokio::test]
    async fn a_task_that_panics_makes_the_daemon_unready_and_stops_the_others() {
        let (health, stop) = (ready_health(), CancellationToken::new());
        let mut sup = Supervisor::new(Arc::clone(&health), stop.clone());
        let other = stop.clone();
        sup.spawn("recorder", async move {
            other.cancelled().await;
            Ok(())
        });
        sup.spawn("poller", async { panic!("a bug") });
        sup.watch().await;
        assert!(stop.is_cancelled());
        assert!(!health.ready());
        assert_eq!(health.failed(), Some("poller"));
        let err = sup.finish(Duration::from_secs(5)).await.expect_err("a failure");
        assert_eq!(err.to_string(), "poller panicked");
    }

    #[tokio::test]
    async fn an_error_or_an_early_return_is_a_failure_and_a_clean_stop_is_not() {
        let (health, stop) = (ready_health(), CancellationToken::new());
        let mut sup = Supervisor::new(Arc::clone(&health), stop.clone());
        sup.spawn("poller", async { Err(anyhow::anyhow!("schema gone")) });
        sup.watch().await;
        assert_eq!(health.failed(), Some("poller"));
        let err = sup.finish(Duration::from_secs(5)).await.expect_err("a failure");
        assert_eq!(err.to_string(), "poller failed: schema gone");

        let (health, stop) = (ready_health(), CancellationToken::new());
        let mut sup = Supervisor::new(Arc::clone(&health), stop.clone());
        sup.spawn("monitor", async { Ok(()) });
        sup.watch().await;
        assert!(
            sup.finish(Duration::from_secs(5)).await.is_err(),
            "ended before the stop"
        );

        let (health, stop) = (ready_health(), CancellationToken::new());
        let mut sup = Supervisor::new(Arc::clone(&health), stop.clone());
        let s = stop.clone();
        sup.spawn("monitor", async move {
            s.cancelled().await;
            Ok(())
        });
        stop.cancel();
        sup.watch().await;
        assert!(sup.finish(Duration::from_secs(5)).await.is_ok());
        assert!(health.ready());
    }

    #[tokio::test]
    async fn a_task_that_outlives_the_grace_is_aborted() {
        let stop = CancellationToken::new();
        let mut sup = Supervisor::new(ready_health(), stop.clone());
        sup.spawn("recorder", std::future::pending());
        stop.cancel();
        sup.watch().await;
        let started = std::time::Instant::now();
        assert!(sup.finish(Duration::from_millis(50)).await.is_ok());
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
