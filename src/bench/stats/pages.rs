//! The pages phase: the first and the 1,000th page (or the last, when a filter has fewer) of
//! the table under each filter, timed around [`stats::page`], the call the API makes.

use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use deadpool_postgres::GenericClient;
use serde::{Deserialize, Serialize};

use super::super::{percentile, progress};
use crate::store::stats::{self, Cursor, Filter};

/// Rows of a page: the API's default.
pub const LIMIT: usize = crate::web::query::DEFAULT_LIMIT;

/// The deep page measured.
pub const DEEP_PAGE: u32 = 1_000;

/// One page's timings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PageTiming {
    pub filter: String,
    /// 1, or the page the walk reached (1,000 unless the filter has fewer).
    pub page: u32,
    pub rows: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// The page with the highest p99, its statement and its plan.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Slowest {
    pub filter: String,
    pub page: u32,
    pub p99_ms: f64,
    pub sql: String,
    pub plan: String,
}

/// The filters measured, by name. Values are ones the generator wrote: offers from 900,000,
/// affiliates 1 to 1,000, `conversion` one in the middle of the table; one delivery in ten
/// ends `failed`.
async fn cases(
    client: &impl GenericClient,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<(&'static str, Filter)>> {
    let conversion: String = client
        .query_one(
            "SELECT conversion_id FROM attempts
             WHERE id >= (SELECT (min(id) + max(id)) / 2 FROM attempts) ORDER BY id LIMIT 1",
            &[],
        )
        .await
        .context("choosing a conversion")?
        .get(0);
    let middle = now - Duration::days(45);
    Ok(vec![
        (
            "last 24 h",
            Filter {
                from: Some(now - Duration::hours(24)),
                ..Filter::default()
            },
        ),
        ("all", Filter::default()),
        (
            "offer",
            Filter {
                offer_ids: Some(vec![(900_000 + super::OFFERS / 2).to_string()]),
                ..Filter::default()
            },
        ),
        (
            "affiliate",
            Filter {
                affiliate_ids: Some(vec![(super::AFFILIATES / 2).to_string()]),
                ..Filter::default()
            },
        ),
        (
            "conversion",
            Filter {
                conversion_id: Some(conversion),
                ..Filter::default()
            },
        ),
        (
            "1-day window",
            Filter {
                from: Some(middle),
                to: Some(middle + Duration::days(1)),
                ..Filter::default()
            },
        ),
        (
            "state failed",
            Filter {
                state: Some("failed".into()),
                ..Filter::default()
            },
        ),
    ])
}

/// Every filter's first and deep page; the slowest one explained.
pub async fn measure(client: &impl GenericClient, reps: u32) -> anyhow::Result<(Vec<PageTiming>, Slowest)> {
    let columns: Vec<String> = stats::STATS_COLUMNS.iter().map(|c| (*c).to_owned()).collect();
    let cases = cases(client, Utc::now()).await?;
    let mut timings = Vec::new();
    let mut slowest: Option<(PageTiming, Filter, Option<Cursor>)> = None;
    for (i, (name, f)) in cases.iter().enumerate() {
        let (deep, cursor) = walk(client, f, &columns, DEEP_PAGE).await?;
        for (page, cursor) in [(1, None), (deep, cursor)] {
            let t = time_page(client, name, f, &columns, page, cursor.as_ref(), reps).await?;
            if slowest.as_ref().is_none_or(|(s, _, _)| t.p99_ms > s.p99_ms) {
                slowest = Some((t.clone(), f.clone(), cursor));
            }
            timings.push(t);
        }
        progress("pages", i as u64 + 1, cases.len() as u64);
    }
    let (t, f, cursor) = slowest.context("no filters")?;
    let (sql, plan) = stats::explain_page(client, &f, &columns, LIMIT, cursor.as_ref()).await?;
    let slowest = Slowest {
        filter: t.filter,
        page: t.page,
        p99_ms: t.p99_ms,
        sql,
        plan,
    };
    Ok((timings, slowest))
}

/// Walks by `next_cursor` to page `target`, or the last page if there are fewer; returns the
/// page reached and the cursor that reads it (`None` for the first).
async fn walk(
    client: &impl GenericClient,
    f: &Filter,
    columns: &[String],
    target: u32,
) -> anyhow::Result<(u32, Option<Cursor>)> {
    let mut page = 1;
    let mut cursor: Option<Cursor> = None;
    while page < target {
        let p = stats::page(client, f, columns, LIMIT, cursor.as_ref()).await?;
        let Some(next) = p.next_cursor else { break };
        cursor = Some(Cursor::decode(&next).map_err(anyhow::Error::msg)?);
        page += 1;
    }
    Ok((page, cursor))
}

/// One untimed call (the walk warmed the deep page; this warms the first), then `reps` timed.
async fn time_page(
    client: &impl GenericClient,
    name: &str,
    f: &Filter,
    columns: &[String],
    page: u32,
    cursor: Option<&Cursor>,
    reps: u32,
) -> anyhow::Result<PageTiming> {
    let first = stats::page(client, f, columns, LIMIT, cursor).await?;
    let mut samples = Vec::with_capacity(reps as usize);
    for _ in 0..reps {
        let started = Instant::now();
        let p = stats::page(client, f, columns, LIMIT, cursor).await?;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(p.rows.len() == first.rows.len(), "page {page} of {name} changed");
    }
    samples.sort_by(f64::total_cmp);
    Ok(PageTiming {
        filter: name.to_owned(),
        page,
        rows: first.rows.len(),
        p50_ms: percentile(&samples, 0.50),
        p99_ms: percentile(&samples, 0.99),
        max_ms: samples.last().copied().unwrap_or(0.0),
    })
}
