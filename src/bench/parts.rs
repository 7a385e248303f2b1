//! The bare measurements: broker, HTTP, database; and the loopback receiver the daemon and the
//! bare client both use.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::Uri;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};

use super::{World, progress};
use crate::amqp;

/// Confirms awaited at once while publishing: enough to keep the broker busy, bounded memory.
const CONFIRM_WINDOW: usize = 2_000;

/// Answers 200 to everything; when recording, notes when each `/lat/<n>` first arrived.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<ReceiverState>,
}

#[derive(Default)]
struct ReceiverState {
    requests: AtomicU64,
    arrivals: Mutex<HashMap<u64, Instant>>,
}

impl Receiver {
    pub async fn start() -> anyhow::Result<Receiver> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(ReceiverState::default());
        let app = Router::new().fallback(answer).with_state(Arc::clone(&state));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Receiver { addr, state })
    }

    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// When the first request for latency sample `n` arrived.
    pub fn arrival(&self, n: u64) -> Option<Instant> {
        self.state.arrivals.lock().ok()?.get(&n).copied()
    }
}

async fn answer(State(state): State<Arc<ReceiverState>>, uri: Uri) -> &'static str {
    state.requests.fetch_add(1, Ordering::Relaxed);
    if let Some(n) = uri
        .path()
        .strip_prefix("/lat/")
        .and_then(|s| s.parse::<u64>().ok())
    {
        let now = Instant::now();
        if let Ok(mut arrivals) = state.arrivals.lock() {
            arrivals.entry(n).or_insert(now);
        }
    }
    "ok"
}

/// A body shaped like a real event.
pub fn event_body(conversion: &str, offer: &str) -> Vec<u8> {
    serde_json::json!({
        "conversion_id": conversion,
        "status": "approved",
        "updated_at": "2026-11-01T10:00:00Z",
        "offer_id": offer,
        "affiliate_id": "7",
        "payout": "1.50",
        "currency": "USD",
        "click_id": format!("clk-{conversion}"),
        "goal": "sale",
    })
    .to_string()
    .into_bytes()
}

/// Publishes `n` persistent events with confirms into a queue of the configured type, then
/// consumes them bare (prefetch 1000, acking with `multiple` every 100): (publish, consume) msg/s.
pub async fn broker(world: &World, n: u64) -> anyhow::Result<(f64, f64)> {
    let cfg = &world.cfg.amqp;
    let conn = amqp::connect(&cfg.url, "cross-postback bench broker").await?;
    let ch = amqp::confirm_channel(&conn).await?;
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(cfg.queue_type.as_str().into()),
    );
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(world.broker_queue.as_str().into(), durable, args)
        .await?;
    let body = event_body("bench-broker", "1");
    let start = Instant::now();
    let mut pending = Vec::with_capacity(CONFIRM_WINDOW);
    for i in 0..n {
        let confirm = ch
            .basic_publish(
                "".into(),
                world.broker_queue.as_str().into(),
                BasicPublishOptions::default(),
                &body,
                amqp::properties(FieldTable::default()),
            )
            .await?;
        pending.push(confirm);
        if pending.len() == CONFIRM_WINDOW || i + 1 == n {
            for c in pending.drain(..) {
                amqp::check_confirm(c.await?)?;
            }
            progress("broker publish", i + 1, n);
        }
    }
    let publish = n as f64 / start.elapsed().as_secs_f64();

    let consumer_ch = conn.create_channel().await?;
    consumer_ch.basic_qos(1000, BasicQosOptions::default()).await?;
    let mut consumer = consumer_ch
        .basic_consume(
            world.broker_queue.as_str().into(),
            "bench".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut got = 0u64;
    let mut start = None;
    while got < n {
        let delivery = consumer
            .next()
            .await
            .ok_or_else(|| anyhow::anyhow!("consumer cancelled"))??;
        start.get_or_insert_with(Instant::now);
        got += 1;
        if got.is_multiple_of(100) || got == n {
            delivery.ack(BasicAckOptions { multiple: true }).await?;
        }
        if got.is_multiple_of(10_000) || got == n {
            progress("broker consume", got, n);
        }
    }
    let consume = n as f64 / start.map_or(f64::MIN_POSITIVE, |s| s.elapsed().as_secs_f64());
    drop(consumer);
    amqp::close(&conn, &[&consumer_ch, &ch]).await;
    Ok((publish, consume))
}

/// A bare client firing `n` requests at the receiver, `concurrency` at a time: req/s.
pub async fn http(receiver: &Receiver, n: u64, concurrency: usize) -> anyhow::Result<f64> {
    let client = reqwest::Client::builder().no_proxy().tcp_nodelay(true).build()?;
    let url = format!("http://{}/bare", receiver.addr);
    let before = receiver.requests();
    let start = Instant::now();
    let mut done = 0u64;
    let mut requests = futures_util::stream::iter(0..n)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            async move { client.get(url).send().await?.bytes().await }
        })
        .buffer_unordered(concurrency.max(1));
    while let Some(result) = requests.next().await {
        result?;
        done += 1;
        if done.is_multiple_of(10_000) || done == n {
            progress("http", done, n);
        }
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    anyhow::ensure!(
        receiver.requests() - before == n,
        "the receiver did not count {n} requests"
    );
    Ok(rate)
}

/// Bare multi-row inserts (500 rows each) of rows shaped like the daemon's attempt rows: rows/s.
pub async fn database(world: &World, n: u64) -> anyhow::Result<f64> {
    let (client, conn) = tokio_postgres::connect(&world.cfg.database.url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    client
        .batch_execute(
            "CREATE TABLE bench_rows (LIKE attempts INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING INDEXES)",
        )
        .await?;
    let start = Instant::now();
    let mut done = 0u64;
    while done < n {
        // Values travel from the client as arrays, as the daemon's own writes do.
        let k = (n - done).min(500);
        let ids: Vec<i64> = (done..done + k).map(|g| g as i64).collect();
        let urls: Vec<String> = ids
            .iter()
            .map(|g| format!("http://127.0.0.1/postback?click=clk-{g}&status=1&sum=1.50"))
            .collect();
        let conversions: Vec<String> = ids.iter().map(|g| format!("conv-{g}")).collect();
        client
            .execute(
                "INSERT INTO bench_rows (delivery_id, url_id, url, method, conversion_id, affiliate_id, offer_id,
                    status, payout, currency, attempt, http_code, duration_ms, sent_at)
                 SELECT d, 1, u, 'GET', c, '7', '42', 'approved', 1.50, 'USD', 1, 200, 3, now()
                 FROM unnest($1::bigint[], $2::text[], $3::text[]) AS t(d, u, c)",
                &[&ids, &urls, &conversions],
            )
            .await?;
        done += k;
        if done.is_multiple_of(20_000) || done == n {
            progress("database", done, n);
        }
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}
