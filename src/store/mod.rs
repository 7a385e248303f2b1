//! Postgres: the pool, migrations, and every SQL statement, by table.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

pub mod access;
pub mod alerts;
pub mod deliveries;
pub mod dispatch;
pub mod intake;
pub mod partitions;
pub mod rates;
pub mod redeliver;
pub mod rejected;
pub mod retention;
pub mod stats;
pub mod urls;

/// Errors of the store; a caller branches on [`StoreError::is_retryable_conflict`] to run a
/// transaction again. Each variant names its part and keeps the cause as its source, not
/// in its text: print the whole with [`crate::report::one_line`], which shows each cause once.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database")]
    Db(#[from] tokio_postgres::Error),
    #[error("database pool")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("{0}")]
    Invalid(String),
}

impl StoreError {
    /// A deadlock or serialisation failure: the transaction may simply be run again.
    pub fn is_retryable_conflict(&self) -> bool {
        match self {
            StoreError::Db(e) => e.code().is_some_and(|c| {
                *c == tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED
                    || *c == tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
            }),
            _ => false,
        }
    }

    /// Whether the server could not be reached, or said to come back later: worth waiting for.
    /// A server that answered with an error (a missing database, a refused login, a failed
    /// migration) will not change by waiting.
    pub fn is_unreachable(&self) -> bool {
        use deadpool_postgres::PoolError;
        let pg = match self {
            StoreError::Db(e) | StoreError::Pool(PoolError::Backend(e)) => e,
            StoreError::Pool(PoolError::Timeout(_)) => return true,
            _ => return false,
        };
        match pg.as_db_error() {
            None => true,
            // Starting up, shutting down, too many connections: the server says "later".
            Some(db) => {
                let code = db.code().code();
                code.starts_with("57P") || code.starts_with("53")
            }
        }
    }
}

/// Where the database of `url` is, for messages: `host:port` (each, when several); nothing
/// secret. An unparsable URL gives "an unparsable address" (the configuration checks it first).
pub fn server_address(url: &str) -> String {
    let Ok(cfg) = tokio_postgres::Config::from_str(url) else {
        return "an unparsable address".to_owned();
    };
    let ports = cfg.get_ports();
    let places: Vec<String> = cfg
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                tokio_postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
                tokio_postgres::config::Host::Unix(dir) => format!("{}:{port}", dir.display()),
            }
        })
        .collect();
    if places.is_empty() {
        format!("localhost:{}", ports.first().copied().unwrap_or(5432))
    } else {
        places.join(",")
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A query through the connection's statement cache: after the first use of a statement on a
/// connection, one round trip instead of two (parse, then execute).
pub(crate) async fn query(
    client: &impl deadpool_postgres::GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<tokio_postgres::Row>> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query(&statement, params).await?)
}

/// [`query`] for a statement whose rows are not needed; returns how many it touched.
pub(crate) async fn execute(
    client: &impl deadpool_postgres::GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<u64> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.execute(&statement, params).await?)
}

/// The pool of a CLI command (and of the tests). Connections are opened lazily; a short connect
/// timeout lets callers notice an unreachable database quickly instead of hanging. Statements
/// are planned for each execution's values, so optional filters (`$1 IS NULL OR col = $1`) of
/// `attempts` and `redeliver` still take their indexes.
pub fn pool(url: &str, size: usize) -> Result<Pool> {
    build(url, size, "-c plan_cache_mode=force_custom_plan")
}

/// The statistics page's and the API's pool: statements planned for each execution's values
/// (each filter takes its index), and no statement runs longer than [`WEB_STATEMENT_TIMEOUT`],
/// so a CSV export whose client stops reading cannot hold a connection for ever.
pub fn web_pool(url: &str, size: usize) -> Result<Pool> {
    let options = format!(
        "-c plan_cache_mode=force_custom_plan -c statement_timeout={}",
        WEB_STATEMENT_TIMEOUT.as_millis()
    );
    build(url, size, &options)
}

/// The longest a statement of the web's pool may run (a whole CSV export is one statement).
pub const WEB_STATEMENT_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The daemon's pool. Its statements are cached per connection and planned once (a generic
/// plan): planning every execution cost a third of the server's CPU at 1,000 events/s. A
/// generic plan made while the tables are empty (a fresh database) would pick sequential scans
/// and keep them as the tables grow, so sequential scans are priced out: every statement of the
/// daemon's hot path has an index to take, and one without an index still scans. JIT is off:
/// a generic plan priced for a large table passes `jit_above_cost`, and compiling its
/// expressions on every execution took 100 ms of a claim whose work takes 1.5 ms.
pub fn daemon_pool(url: &str, size: usize) -> Result<Pool> {
    build(
        url,
        size,
        "-c plan_cache_mode=force_generic_plan -c enable_seqscan=off -c jit=off",
    )
}

fn build(url: &str, size: usize, options: &str) -> Result<Pool> {
    let mut pg = tokio_postgres::Config::from_str(url)?;
    pg.connect_timeout(Duration::from_secs(5));
    pg.application_name("cross-postback");
    pg.options(options);
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .create_timeout(Some(Duration::from_secs(5)))
        .wait_timeout(Some(Duration::from_secs(10)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .build()
        .map_err(|e| StoreError::Invalid(format!("cannot build the database pool: {e}")))
}

/// Answers when the database answers a trivial query.
pub async fn ping(pool: &Pool) -> Result<()> {
    let client = pool.get().await?;
    client.simple_query("SELECT 1").await?;
    Ok(())
}

/// The migrations, in order. Each runs once, in its own transaction.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../../migrations/0001_init.sql")),
    (2, include_str!("../../migrations/0002_redeliver_replay.sql")),
    (3, include_str!("../../migrations/0003_mask_secrets.sql")),
    (4, include_str!("../../migrations/0004_url_headers_timeout.sql")),
    (5, include_str!("../../migrations/0005_web.sql")),
    (6, include_str!("../../migrations/0006_web_sessions.sql")),
    (7, include_str!("../../migrations/0007_growth.sql")),
    (8, include_str!("../../migrations/0008_scale.sql")),
    (9, include_str!("../../migrations/0009_attempts_key.sql")),
    (10, include_str!("../../migrations/0010_in_flight.sql")),
];

/// The versions [`migrate`] applies, in order.
pub fn migration_versions() -> Vec<i32> {
    MIGRATIONS.iter().map(|(v, _)| *v).collect()
}

/// Serialises concurrent migrators (several replicas starting at once).
const MIGRATION_LOCK: i64 = 0x7870_625f_6d69_6772; // "xpb_migr"

/// Applies pending migrations under a session advisory lock.
pub async fn migrate(pool: &Pool) -> Result<Vec<i32>> {
    migrate_up_to(pool, i32::MAX).await
}

/// Applies pending migrations up to version `last`, as an older release would have: the
/// upgrade tests build the previous schema with it.
pub async fn migrate_up_to(pool: &Pool, last: i32) -> Result<Vec<i32>> {
    let mut client = pool.get().await?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let result = apply_migrations(&mut client, last).await;
    // Unlock on the same session even when a migration failed.
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    let applied = result?;
    unlocked?;
    Ok(applied)
}

/// What `migrate` did, in words: "schema up to date (version 3)", or "applied migrations 3,
/// 4; schema at version 4".
pub fn migration_summary(applied: &[i32]) -> String {
    let version = MIGRATIONS.last().map_or(0, |(v, _)| *v);
    if applied.is_empty() {
        return format!("schema up to date (version {version})");
    }
    let list: Vec<String> = applied.iter().map(ToString::to_string).collect();
    let noun = if applied.len() == 1 {
        "migration"
    } else {
        "migrations"
    };
    format!("applied {noun} {}; schema at version {version}", list.join(", "))
}

async fn apply_migrations(client: &mut deadpool_postgres::Client, last: i32) -> Result<Vec<i32>> {
    // Created only when missing: `CREATE TABLE IF NOT EXISTS` on an existing table makes the
    // server send a NOTICE, which the driver logs at INFO on every start.
    let exists: bool = client
        .query_one("SELECT to_regclass('xpb_schema_migrations') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        client
            .batch_execute(
                "CREATE TABLE xpb_schema_migrations (
                    version integer PRIMARY KEY,
                    applied_at timestamptz NOT NULL DEFAULT now())",
            )
            .await?;
    }
    let mut applied = Vec::new();
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v <= last) {
        let tx = client.transaction().await?;
        let done = tx
            .query_opt(
                "SELECT 1 FROM xpb_schema_migrations WHERE version = $1",
                &[version],
            )
            .await?
            .is_some();
        if !done {
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO xpb_schema_migrations (version) VALUES ($1)",
                &[version],
            )
            .await?;
            applied.push(*version);
        }
        tx.commit().await?;
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use std::error::Error;

    #[test]
    fn migrate_says_what_it_did_in_words() {
        let last = super::migration_versions().last().copied().unwrap_or_default();
        assert_eq!(
            super::migration_summary(&[]),
            format!("schema up to date (version {last})")
        );
        assert_eq!(
            super::migration_summary(&[2, 3]),
            format!("applied migrations 2, 3; schema at version {last}")
        );
        assert_eq!(
            super::migration_summary(&[3]),
            format!("applied migration 3; schema at version {last}")
        );
    }

    use super::StoreError;

    #[test]
    fn the_server_address_names_host_and_port_and_nothing_secret() {
        for (url, want) in [
            ("postgres://u:secret@db.example:5999/x", "db.example:5999"),
            ("postgres://u@127.0.0.1/x", "127.0.0.1:5432"),
            ("host=a,b port=1,2 user=u password=secret", "a:1,b:2"),
        ] {
            assert_eq!(super::server_address(url), want, "{url}");
        }
    }

    /// Each cause once: a variant's text leaves its source out, so that anyhow's `{:#}` and
    /// [`crate::report::one_line`] (which the CLI prints with) show it once.
    #[test]
    fn a_store_error_shows_the_database_cause_once() {
        // A real tokio-postgres error with a source: a connection string that does not parse.
        let pg = "postgres://h/db?sslmode=bogus"
            .parse::<tokio_postgres::Config>()
            .expect_err("bad sslmode");
        let cause = pg.source().map(ToString::to_string).expect("has a source");
        let e = anyhow::Error::new(StoreError::from(pg)).context("migrating");
        for text in [format!("{e:#}"), crate::report::one_line(e.as_ref())] {
            assert_eq!(text.matches(&cause).count(), 1, "{text}");
            assert!(text.starts_with("migrating: database: "), "{text}");
        }
    }
}
