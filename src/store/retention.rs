//! Retention's statements: whole `attempts` partitions detached and dropped, and the other tables
//! trimmed in bounded batches, each batch its own short transaction that skips locked rows, so
//! nothing intake or dispatch waits on is held for long, and a run stopped anywhere leaves only
//! whole batches done (a partition left half-detached is finished by the next run).

use chrono::{DateTime, Utc};
use tokio_postgres::Client;

use super::Result;
use super::partitions;

/// Rows per batch: a batch's transaction lasts milliseconds.
pub const BATCH: i64 = 1_000;

/// What retention removed, or would remove, from one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    pub table: &'static str,
    /// Rows; for `attempts`, Postgres's estimate of the dropped partitions' rows.
    pub rows: i64,
    /// The partitions dropped (`attempts` only).
    pub partitions: Vec<String>,
}

/// The partitions of `attempts` (attached, half-detached, or detached and left) whose whole day
/// lies before `cutoff`: (name, estimated rows, attached, detach pending).
async fn old_partitions(client: &Client, cutoff: DateTime<Utc>) -> Result<Vec<(String, i64, bool, bool)>> {
    let rows = client
        .query(
            "SELECT c.relname::text, greatest(c.reltuples, 0)::int8, i.inhrelid IS NOT NULL,
                    coalesce(i.inhdetachpending, false)
             FROM pg_class c
             LEFT JOIN pg_inherits i ON i.inhrelid = c.oid AND i.inhparent = 'attempts'::regclass
             WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace
               AND c.relname ~ '^attempts_[0-9]{8}$'
             ORDER BY c.relname",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get(1), r.get(2), r.get(3)))
        .filter(|(name, ..)| partitions::day_of(name).is_some_and(|day| partitions::past(day, cutoff)))
        .collect())
}

/// Drops the partitions of `attempts` past `cutoff`. Each is detached CONCURRENTLY first (no lock
/// that the recorder's inserts or the page's reads wait on), then dropped; one left half-detached
/// by a run that was stopped is finalised, one detached but not dropped is dropped.
pub async fn attempts(client: &Client, cutoff: DateTime<Utc>, dry_run: bool) -> Result<Removed> {
    let mut removed = Removed {
        table: "attempts",
        ..Removed::default()
    };
    for (name, rows, attached, pending) in old_partitions(client, cutoff).await? {
        if !dry_run {
            let ident = quote_ident(&name);
            if attached && pending {
                client
                    .batch_execute(&format!("ALTER TABLE attempts DETACH PARTITION {ident} FINALIZE"))
                    .await?;
            } else if attached {
                client
                    .batch_execute(&format!(
                        "ALTER TABLE attempts DETACH PARTITION {ident} CONCURRENTLY"
                    ))
                    .await?;
            }
            client.batch_execute(&format!("DROP TABLE {ident}")).await?;
        }
        removed.rows += rows;
        removed.partitions.push(name);
    }
    Ok(removed)
}

/// A table name as an SQL identifier (ours match `attempts_[0-9]{8}`; quoted all the same).
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A table trimmed by walking its primary key from the oldest row: the rows of a batch are the
/// next `$2` ids after `$1`; those `{victim}` holds for (given `$3`, the cutoff) are removed, the
/// locked ones skipped. The walk ends at a batch that reaches rows made after the cutoff (ids
/// grow with time, so later ones are younger), so a run reads the old rows and a batch more,
/// whatever the table's size, and needs no index but the primary key.
struct Walk {
    table: &'static str,
    /// The column that says when a row was made.
    made: &'static str,
    /// The condition for removal, on `t`.
    victim: &'static str,
}

/// Terminal deliveries last changed before the cutoff.
const DELIVERIES: Walk = Walk {
    table: "deliveries",
    made: "created_at",
    victim: "t.state <> 'pending' AND t.updated_at < $3",
};

/// Invalid messages received before the cutoff.
const REJECTED: Walk = Walk {
    table: "rejected_messages",
    made: "received_at",
    victim: "t.received_at < $3",
};

impl Walk {
    fn sql(&self, dry_run: bool) -> String {
        let Walk { table, made, victim } = self;
        let act = if dry_run {
            format!("SELECT t.id FROM {table} t JOIN batch b ON b.id = t.id WHERE {victim}")
        } else {
            format!(
                "DELETE FROM {table} t USING (SELECT t.id FROM {table} t JOIN batch b ON b.id = t.id
                     WHERE {victim} FOR UPDATE OF t SKIP LOCKED) v
                 WHERE t.id = v.id RETURNING t.id"
            )
        };
        format!(
            "WITH batch AS (SELECT id, {made} AS made FROM {table} WHERE id > $1 ORDER BY id LIMIT $2),
                  gone AS ({act})
             SELECT (SELECT max(id) FROM batch), (SELECT count(*) FROM batch),
                    coalesce((SELECT bool_or(made >= $3) FROM batch), true), (SELECT count(*) FROM gone)"
        )
    }

    async fn run(&self, client: &Client, cutoff: DateTime<Utc>, dry_run: bool) -> Result<Removed> {
        let statement = client.prepare(&self.sql(dry_run)).await?;
        let mut removed = Removed {
            table: self.table,
            ..Removed::default()
        };
        let mut after = 0_i64;
        loop {
            let row = client.query_one(&statement, &[&after, &BATCH, &cutoff]).await?;
            let (last, seen, reached_new, gone): (Option<i64>, i64, bool, i64) =
                (row.get(0), row.get(1), row.get(2), row.get(3));
            removed.rows += gone;
            match last {
                Some(last) if seen == BATCH && !reached_new => after = last,
                _ => return Ok(removed),
            }
        }
    }
}

pub async fn deliveries(client: &Client, cutoff: DateTime<Utc>, dry_run: bool) -> Result<Removed> {
    DELIVERIES.run(client, cutoff, dry_run).await
}

pub async fn rejected(client: &Client, cutoff: DateTime<Utc>, dry_run: bool) -> Result<Removed> {
    REJECTED.run(client, cutoff, dry_run).await
}

/// A table trimmed by a condition on the cutoff (`$1`), a batch of `$2` rows a statement.
struct Trim {
    table: &'static str,
    /// The rows past the cutoff, counted for a dry run.
    count: &'static str,
    /// Removes one batch of them, skipping locked rows.
    delete: &'static str,
}

/// Conversions unchanged since the cutoff, oldest first by `conversions_modified`. A conversion
/// removed is new again: its next event is decided as a first one.
const CONVERSIONS: Trim = Trim {
    table: "conversions",
    count: "SELECT count(*) FROM conversions WHERE modified_at < $1",
    delete: "DELETE FROM conversions t USING (
                 SELECT conversion_id FROM conversions WHERE modified_at < $1
                 ORDER BY modified_at LIMIT $2 FOR UPDATE SKIP LOCKED) v
             WHERE t.conversion_id = v.conversion_id",
};

/// Partner links expired or revoked before the cutoff.
const SHARE_LINKS: Trim = Trim {
    table: "share_links",
    count: "SELECT count(*) FROM share_links WHERE expires_at < $1 OR revoked_at < $1",
    delete: "DELETE FROM share_links WHERE id IN (
                 SELECT id FROM share_links WHERE expires_at < $1 OR revoked_at < $1
                 LIMIT $2 FOR UPDATE SKIP LOCKED)",
};

impl Trim {
    async fn run(&self, client: &Client, cutoff: DateTime<Utc>, dry_run: bool) -> Result<Removed> {
        let mut removed = Removed {
            table: self.table,
            ..Removed::default()
        };
        if dry_run {
            removed.rows = client.query_one(self.count, &[&cutoff]).await?.get(0);
            return Ok(removed);
        }
        let statement = client.prepare(self.delete).await?;
        loop {
            let gone = client.execute(&statement, &[&cutoff, &BATCH]).await?;
            removed.rows += i64::try_from(gone).unwrap_or(i64::MAX);
            if gone < BATCH as u64 {
                return Ok(removed);
            }
        }
    }
}

pub async fn conversions(client: &Client, cutoff: DateTime<Utc>, dry_run: bool) -> Result<Removed> {
    CONVERSIONS.run(client, cutoff, dry_run).await
}

pub async fn share_links(client: &Client, cutoff: DateTime<Utc>, dry_run: bool) -> Result<Removed> {
    SHARE_LINKS.run(client, cutoff, dry_run).await
}

#[cfg(test)]
mod tests {
    use super::{DELIVERIES, REJECTED};

    #[test]
    fn a_walk_deletes_only_with_its_condition_and_skips_locked_rows() {
        let sql = DELIVERIES.sql(false);
        assert!(
            sql.contains("FROM deliveries WHERE id > $1 ORDER BY id LIMIT $2"),
            "{sql}"
        );
        assert!(
            sql.contains("t.state <> 'pending' AND t.updated_at < $3 FOR UPDATE OF t SKIP LOCKED"),
            "{sql}"
        );
        let dry = REJECTED.sql(true);
        assert!(!dry.contains("DELETE"), "{dry}");
        assert!(
            dry.contains("received_at AS made FROM rejected_messages"),
            "{dry}"
        );
    }
}
