//! The bench results as a table for people.

use super::Results;

pub fn table(r: &Results) -> String {
    let rate = |v: f64| format!("{:>12.0}", v);
    let rows: Vec<(String, String, String)> = vec![
        (
            "broker publish (confirms)".into(),
            rate(r.publish_msg_per_s),
            "msg/s".into(),
        ),
        (
            "broker consume (bare)".into(),
            rate(r.broker_msg_per_s),
            "msg/s".into(),
        ),
        (
            "http (bare client)".into(),
            rate(r.http_req_per_s),
            "req/s".into(),
        ),
        (
            "database (500-row inserts)".into(),
            rate(r.database_rows_per_s),
            "rows/s".into(),
        ),
        (
            format!("bound (w = {} rows/event)", r.rows_per_event),
            rate(r.bound_events_per_s),
            "events/s".into(),
        ),
        (
            "end to end".into(),
            rate(r.end_to_end_events_per_s),
            "events/s".into(),
        ),
        (
            "end to end / bound".into(),
            format!("{:>11.1}%", r.end_to_end_of_bound * 100.0),
            String::new(),
        ),
        (
            format!("latency p50 ({}/s for {} s)", r.latency_rate, r.latency_seconds),
            format!("{:>12.1}", r.latency_p50_ms),
            "ms".into(),
        ),
        (
            "latency p99".into(),
            format!("{:>12.1}", r.latency_p99_ms),
            "ms".into(),
        ),
        (
            "latency max".into(),
            format!("{:>12.1}", r.latency_max_ms),
            "ms".into(),
        ),
        (
            "daemon peak RSS".into(),
            format!("{:>12.1}", r.peak_rss_mib),
            "MiB".into(),
        ),
    ];
    let mut out = format!(
        "cross-postback bench: {} events, {} URL(s) per offer, {} queue, concurrency {}\n",
        r.events, r.urls_per_offer, r.queue_type, r.concurrency
    );
    for (name, value, unit) in rows {
        out += &format!("  {name:<34}{value} {unit}\n");
    }
    out
}
