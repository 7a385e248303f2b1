//! A delivery superseded while its attempt was in flight: a 2xx for that attempt ends it
//! `delivered`; any other outcome leaves it `superseded`. Either way it is not retried, and the
//! newer delivery is sent after it.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};

use crate::harness::*;

/// A receiver that holds the first request until [`Gate::release`], then answers it with the
/// given code; later requests get 200 at once. Each request's query is recorded.
struct Gate {
    url: String,
    arrived: mpsc::UnboundedReceiver<String>,
    open: Arc<Semaphore>,
    first_answer: Arc<Mutex<Option<u16>>>,
}

#[derive(Clone)]
struct Shared {
    arrived: mpsc::UnboundedSender<String>,
    open: Arc<Semaphore>,
    first_answer: Arc<Mutex<Option<u16>>>,
    seen: Arc<Mutex<usize>>,
}

async fn answer(State(s): State<Shared>, RawQuery(query): RawQuery) -> StatusCode {
    let first = {
        let mut seen = s.seen.lock().expect("lock");
        *seen += 1;
        *seen == 1
    };
    let _ = s.arrived.send(query.unwrap_or_default());
    if !first {
        return StatusCode::OK;
    }
    let permit = s.open.acquire().await.expect("the gate is never closed");
    permit.forget();
    let code = s.first_answer.lock().expect("lock").unwrap_or(200);
    StatusCode::from_u16(code).expect("a valid status")
}

impl Gate {
    async fn start() -> Gate {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("receiver address");
        let (tx, arrived) = mpsc::unbounded_channel();
        let shared = Shared {
            arrived: tx,
            open: Arc::new(Semaphore::new(0)),
            first_answer: Arc::new(Mutex::new(None)),
            seen: Arc::new(Mutex::new(0)),
        };
        let gate = Gate {
            url: format!("http://{addr}/pb?s={{status_name}}"),
            arrived,
            open: Arc::clone(&shared.open),
            first_answer: Arc::clone(&shared.first_answer),
        };
        let app = Router::new().fallback(answer).with_state(shared);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        gate
    }

    /// The next request's query, within the deadline.
    async fn next(&mut self) -> String {
        tokio::time::timeout(DEADLINE, self.arrived.recv())
            .await
            .expect("a request within the deadline")
            .expect("the receiver runs")
    }

    fn release(&self, code: u16) {
        *self.first_answer.lock().expect("lock") = Some(code);
        self.open.add_permits(1);
    }
}

/// The pending is held at the receiver while the approved arrives; then the receiver answers
/// `code`. Returns the older delivery's state and attempts once the newer one is delivered.
async fn superseded_while_in_flight(code: u16) -> (String, i64) {
    let env = Env::new().await;
    let mut gate = Gate::start().await;
    env.add_url("1", &gate.url).await;
    // The held request must not time out, nor its lease expire, before the test releases it.
    let mut cfg = env.cfg.clone();
    cfg.delivery.timeout = ms(20_000);
    cfg.delivery.lease = ms(40_000);
    let daemon = env.start_with(cfg).await;
    env.publish(&[ev("c1", "pending", 0, json!({}))]).await;
    assert_eq!(gate.next().await, "s=pending");
    env.publish(&[ev("c1", "approved", 1, json!({}))]).await;
    let pg = env.pg().await;
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE state = 'superseded' AND lease_owner IS NOT NULL",
        1,
    )
    .await;
    gate.release(code);
    assert_eq!(
        gate.next().await,
        "s=approved",
        "the newer is sent after the older's answer"
    );
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries
         WHERE state = 'delivered' AND id = (SELECT max(id) FROM deliveries)",
        1,
    )
    .await;
    daemon.stop().await;
    assert!(gate.arrived.try_recv().is_err(), "nothing more was sent");
    let row = pg
        .query_one(
            "SELECT state, (SELECT count(*) FROM attempts a WHERE a.delivery_id = d.id)
             FROM deliveries d WHERE id = (SELECT min(id) FROM deliveries)",
            &[],
        )
        .await
        .expect("the older delivery");
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn a_superseded_delivery_whose_attempt_got_a_2xx_ends_delivered() {
    let (state, attempts) = superseded_while_in_flight(200).await;
    assert_eq!((state.as_str(), attempts), ("delivered", 1));
}

#[tokio::test]
async fn a_superseded_delivery_whose_attempt_failed_stays_superseded_and_is_not_retried() {
    let (state, attempts) = superseded_while_in_flight(500).await;
    assert_eq!((state.as_str(), attempts), ("superseded", 1));
}
