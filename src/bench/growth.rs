//! `bench --scenario growth`: the end-to-end and latency phases twice, on an empty database and
//! on one loaded with history (attempts over 90 days) and a backlog of due deliveries to a dead
//! host, both generated in SQL; the poller's claim timed on the loaded one; and the bytes of
//! tables, indexes and WAL each event delivered at its first attempt cost on the empty one.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use super::daemon::EndToEnd;
use super::parts::Receiver;
use super::{BenchArgs, World, history, percentile};
use crate::config::Config;
use crate::store;

/// A host nothing answers at (TEST-NET-1 is never routed): every attempt ends at the connect
/// timeout, as with a receiver that is down.
const DEAD_URL: &str = "http://192.0.2.1:81/dead?c={conversion_id}";

/// Claims timed for `claim_ms_p99`.
const CLAIMS: usize = 50;

/// The tables whose bytes are counted per event.
const TABLES: [&str; 3] = ["conversions", "deliveries", "attempts"];

#[derive(Debug, Clone, Default, Serialize)]
pub struct Growth {
    pub throughput_ratio: f64,
    pub p99_ratio: f64,
    pub claim_ms_p99: f64,
    pub table_bytes_per_event: f64,
    pub wal_bytes_per_event: f64,
    /// `table_bytes_per_event` by table (each with its indexes and TOAST; `attempts` with its
    /// partitions).
    pub table_bytes_by_table: BTreeMap<String, f64>,
    pub empty: Phase,
    pub loaded: Phase,
    pub history_attempts: i64,
    pub backlog: i64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Phase {
    pub end_to_end_events_per_s: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
}

/// The prefix of this scenario's scratch databases (`xpb_growth_<id>`): the pipeline bench's
/// check for its own leftovers (`xpb_bench_`) is not confused when both run at once, nor this one's.
const GROWTH_DB: &str = "xpb_growth";

pub async fn run(args: &BenchArgs, cfg: &Config, config_file: Option<&Path>) -> anyhow::Result<()> {
    let mut g = Growth::default();
    // A receiver per run: it keeps the first arrival of each latency sample.
    let receiver = Receiver::start().await?;
    let world = World::create_named(cfg, GROWTH_DB)
        .await
        .context("preparing the empty bench database")?;
    let result = empty(args, &world, &receiver, config_file).await;
    world.remove().await;
    (g.empty, (g.table_bytes_by_table, g.wal_bytes_per_event)) = result.context("on an empty database")?;
    g.table_bytes_per_event = g.table_bytes_by_table.values().sum();
    let receiver = Receiver::start().await?;
    let world = World::create_named(cfg, GROWTH_DB)
        .await
        .context("preparing the loaded bench database")?;
    let result = loaded(args, &world, &receiver, config_file).await;
    world.remove().await;
    (g.loaded, g.claim_ms_p99, (g.history_attempts, g.backlog)) = result.context("on a loaded database")?;
    g.throughput_ratio = g.loaded.end_to_end_events_per_s / g.empty.end_to_end_events_per_s;
    g.p99_ratio = g.loaded.latency_p99_ms / g.empty.latency_p99_ms;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&g)?);
    } else {
        print!("{}", table(&g));
    }
    Ok(())
}

/// The phases on an empty database, and the bytes per event they cost (every event is
/// delivered at its first attempt to one URL). WAL is the server's: other work on the same
/// server counts too.
async fn empty(
    args: &BenchArgs,
    world: &World,
    receiver: &Receiver,
    config_file: Option<&Path>,
) -> anyhow::Result<(Phase, (BTreeMap<String, f64>, f64))> {
    let (tables_before, wal_before) = sizes(world).await?;
    let phase = phases(args, world, receiver, config_file).await?;
    let (tables_after, wal_after) = sizes(world).await?;
    let events = (args.events + args.rate * args.seconds) as f64;
    let by_table = tables_after
        .into_iter()
        .map(|(table, after)| {
            let before = tables_before.get(&table).copied().unwrap_or(0);
            (table, (after - before) as f64 / events)
        })
        .collect();
    Ok((phase, (by_table, (wal_after - wal_before) as f64 / events)))
}

async fn loaded(
    args: &BenchArgs,
    world: &World,
    receiver: &Receiver,
    config_file: Option<&Path>,
) -> anyhow::Result<(Phase, f64, (i64, i64))> {
    let filled = load(args, world).await?;
    let claim_ms = time_claims(world).await?;
    let phase = phases(args, world, receiver, config_file).await?;
    Ok((phase, claim_ms, filled))
}

async fn phases(
    args: &BenchArgs,
    world: &World,
    receiver: &Receiver,
    config_file: Option<&Path>,
) -> anyhow::Result<Phase> {
    let run = EndToEnd {
        world,
        receiver,
        config_file,
        urls: 1,
    };
    let (e2e, latency, _) = run
        .measure(args.events, args.rate, Duration::from_secs(args.seconds))
        .await?;
    Ok(Phase {
        end_to_end_events_per_s: e2e,
        latency_p50_ms: percentile(&latency, 0.50),
        latency_p99_ms: percentile(&latency, 0.99),
    })
}

/// (bytes of each table with its indexes and TOAST, `attempts` with its partitions; the WAL
/// position in bytes).
async fn sizes(world: &World) -> anyhow::Result<(BTreeMap<String, i64>, i64)> {
    let pool = store::pool(&world.cfg.database.url, 1)?;
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT CASE WHEN c.relname ~ '^attempts_[0-9]{8}$' THEN 'attempts' ELSE c.relname END,
                    sum(pg_total_relation_size(c.oid))::int8
             FROM pg_class c
             WHERE c.relkind = 'r' AND (c.relname = ANY($1) OR c.relname ~ '^attempts_[0-9]{8}$')
             GROUP BY 1",
            &[&TABLES.as_slice()],
        )
        .await?;
    let wal = client
        .query_one("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::int8", &[])
        .await?;
    Ok((rows.iter().map(|r| (r.get(0), r.get(1))).collect(), wal.get(0)))
}

/// History and the dead host's backlog; returns (attempts, backlog) written.
async fn load(args: &BenchArgs, world: &World) -> anyhow::Result<(i64, i64)> {
    let pool = store::pool(&world.cfg.database.url, 1)?;
    let client = pool.get().await?;
    let started = Instant::now();
    let filled = history::fill_attempts(&client, args.history, 90.0, 1_000, 100).await?;
    let dead: i64 = client
        .query_one(
            "INSERT INTO cross_postback_urls (offer_id, url) VALUES ('dead', $1) RETURNING id",
            &[&DEAD_URL],
        )
        .await?
        .get(0);
    let backlog = history::fill_backlog(&client, args.backlog, dead).await?;
    client.batch_execute("VACUUM ANALYZE").await?;
    settle(&client).await;
    eprintln!(
        "growth: {} attempts of history and {backlog} due deliveries written in {:.0?}",
        filled.attempts,
        started.elapsed()
    );
    Ok((filled.attempts, backlog))
}

/// Writes out what the fill left dirty before the loaded phases are timed. The fill writes
/// gigabytes in minutes, which a database that grew over 90 days never had waiting at once; left
/// to the checkpointer, those writes go on during the phases and every commit's WAL flush waits
/// behind them (seen as commits stalled 100-300 ms in `IO:WALSync`). CHECKPOINT needs superuser
/// or `pg_checkpoint`; without it the phases run unsettled, and the bench says so.
async fn settle(client: &tokio_postgres::Client) {
    if let Err(e) = client.batch_execute("CHECKPOINT").await {
        eprintln!(
            "growth: could not checkpoint after the fill, the loaded phases may wait on its writes: {}",
            crate::report::one_line(&e)
        );
    }
}

/// The poller's claim, as the daemon runs it (its session settings, the limits of the defaults),
/// each in a transaction rolled back so every claim faces the whole backlog; p99 in ms.
async fn time_claims(world: &World) -> anyhow::Result<f64> {
    let pool = store::daemon_pool(&world.cfg.database.url, 1)?;
    let mut client = pool.get().await?;
    let d = &world.cfg.delivery;
    let limit = i64::try_from(2 * d.concurrency).unwrap_or(i64::MAX);
    let per_url = i64::try_from(d.per_host_concurrency).unwrap_or(i64::MAX);
    let owner = uuid::Uuid::new_v4();
    let mut times = Vec::with_capacity(CLAIMS);
    // The first claim on a connection prepares and plans the statement: not a poll's cost.
    for i in 0..=CLAIMS {
        let tx = client.transaction().await?;
        let started = Instant::now();
        store::dispatch::claim_due(&tx, owner, d.lease.0, limit, per_url, &[], &[]).await?;
        if i > 0 {
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        tx.rollback().await?;
    }
    times.sort_by(f64::total_cmp);
    Ok(percentile(&times, 0.99))
}

fn table(g: &Growth) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:<38}{:>12}{:>12}{:>10}\n",
        "growth", "empty", "loaded", "ratio"
    ));
    out.push_str(&format!(
        "{:<38}{:>12.0}{:>12.0}{:>10.2}\n",
        "end to end (events/s)",
        g.empty.end_to_end_events_per_s,
        g.loaded.end_to_end_events_per_s,
        g.throughput_ratio
    ));
    out.push_str(&format!(
        "{:<38}{:>12.1}{:>12.1}{:>10.2}\n",
        "first attempt p99 (ms)", g.empty.latency_p99_ms, g.loaded.latency_p99_ms, g.p99_ratio
    ));
    out.push_str(&format!(
        "{:<38}{:>12.1}{:>12.1}\n",
        "first attempt p50 (ms)", g.empty.latency_p50_ms, g.loaded.latency_p50_ms
    ));
    out.push_str(&format!(
        "{:<38}{:>34.2}\n",
        "claim with the backlog, p99 (ms)", g.claim_ms_p99
    ));
    out.push_str(&format!(
        "{:<38}{:>34.0}\n",
        "tables + indexes per event (bytes)", g.table_bytes_per_event
    ));
    for (table, bytes) in &g.table_bytes_by_table {
        out.push_str(&format!("{:<38}{:>34.0}\n", format!("  {table}"), bytes));
    }
    out.push_str(&format!(
        "{:<38}{:>34.0}\n",
        "WAL per event (bytes)", g.wal_bytes_per_event
    ));
    out.push_str(&format!(
        "{:<38}{:>34}\n",
        "loaded with (attempts / due backlog)",
        format!("{} / {}", g.history_attempts, g.backlog)
    ));
    out
}
