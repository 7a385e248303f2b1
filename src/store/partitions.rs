//! `attempts` partitions: one per UTC day of `sent_at`, named `attempts_YYYYMMDD`, made by the
//! SQL function `xpb_attempts_partition` (migration 0007) under a transaction-scoped advisory
//! lock, so replicas that start at once never race to make the same one.

use chrono::{Duration as Days, NaiveDate, Utc};
use deadpool_postgres::GenericClient;

use super::Result;

/// Days ahead of today whose partitions the daemon keeps made: an attempt is written at the
/// time it is sent, so a week covers any stop of the daemon's maintenance short of a week.
pub const AHEAD_DAYS: i64 = 7;

/// The advisory lock key `xpb_attempts_partition` takes ("xpb_part").
pub const PARTITION_LOCK: i64 = 0x7870_625f_7061_7274;

/// Makes the missing partitions of the UTC days `from` to `to`, both included; returns how many
/// it made.
pub async fn ensure_range(client: &impl GenericClient, from: NaiveDate, to: NaiveDate) -> Result<i64> {
    let row = client.query_one(ENSURE, &[&from, &to]).await?;
    Ok(row.get(0))
}

/// Makes the partitions of the days `$1` to `$2` where missing; answers how many it made.
pub const ENSURE: &str = "SELECT count(*) FILTER (WHERE made) FROM (
    SELECT xpb_attempts_partition(d::date) AS made
    FROM generate_series($1::date, $2::date, interval '1 day') AS d) s";

/// The days whose partitions the daemon keeps made: yesterday to [`AHEAD_DAYS`] ahead.
pub fn ahead(today: NaiveDate) -> (NaiveDate, NaiveDate) {
    (today - Days::days(1), today + Days::days(AHEAD_DAYS))
}

/// Makes the partitions of [`ahead`] of today where missing, on a connection of its own.
pub async fn ensure_ahead(client: &tokio_postgres::Client) -> Result<i64> {
    let (from, to) = ahead(Utc::now().date_naive());
    let row = client.query_one(ENSURE, &[&from, &to]).await?;
    Ok(row.get(0))
}

/// The day a partition of `attempts` holds, from its name; `None` for any other table.
pub fn day_of(name: &str) -> Option<NaiveDate> {
    let digits = name.strip_prefix("attempts_")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDate::parse_from_str(digits, "%Y%m%d").ok()
}

/// Whether the partition of `day` holds only attempts sent before `cutoff`: its whole day
/// (it ends at the next midnight UTC) lies before it.
pub fn past(day: NaiveDate, cutoff: chrono::DateTime<Utc>) -> bool {
    day.succ_opt()
        .and_then(|next| next.and_hms_opt(0, 0, 0))
        .is_some_and(|end| end.and_utc() <= cutoff)
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone, Utc};

    use super::{day_of, past};

    #[test]
    fn partitions_are_known_by_their_names() {
        let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd);
        for (name, want) in [
            ("attempts_20261201", d(2026, 12, 1)),
            ("attempts_20260229", None),
            ("attempts_2026120", None),
            ("attempts_2026120x", None),
            ("attempts_v1", None),
            ("deliveries_20261201", None),
        ] {
            assert_eq!(day_of(name), want, "{name}");
        }
    }

    #[test]
    fn a_partition_is_past_when_its_whole_day_is() {
        let day = NaiveDate::from_ymd_opt(2026, 12, 1).expect("a date");
        let at = |d, h| {
            Utc.with_ymd_and_hms(2026, 12, d, h, 0, 0)
                .single()
                .expect("a time")
        };
        assert!(!past(day, at(1, 23)));
        assert!(past(day, at(2, 0)));
        assert!(past(day, at(3, 5)));
    }
}
