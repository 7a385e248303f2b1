//! Several replicas starting at once: migrations run under an advisory lock.

use tokio_util::sync::CancellationToken;

use cross_postback::store;

use crate::harness::*;

#[tokio::test]
async fn five_daemons_starting_at_once_on_an_empty_database_all_come_up() {
    let mut env = Env::empty().await;
    env.cfg.database.pool_size = 4;
    let stop = CancellationToken::new();
    let starts = (0..5).map(|_| cross_postback::daemon::start(env.cfg.clone(), stop.clone()));
    let started = futures_util::future::join_all(starts).await;
    let mut daemons = Vec::new();
    for (i, d) in started.into_iter().enumerate() {
        daemons.push(d.unwrap_or_else(|e| panic!("daemon {i} failed to start: {e:#}")));
    }
    let pg = env.pg().await;
    let versions = rows(&pg, "SELECT version FROM xpb_schema_migrations ORDER BY version").await;
    let want: Vec<Vec<Option<String>>> = store::migration_versions()
        .iter()
        .map(|v| vec![Some(v.to_string())])
        .collect();
    assert_eq!(versions, want, "each applied once");
    for d in &daemons {
        eventually("every replica ready", || async {
            ready(d.http_addr).await.then_some(())
        })
        .await;
    }
    stop.cancel();
    for d in daemons {
        tokio::time::timeout(std::time::Duration::from_secs(20), d.wait())
            .await
            .expect("stops in time")
            .expect("stops cleanly");
    }
}
