//! Macros render end to end; hostile values arrive intact and change nothing else.

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn macros_render_and_hostile_values_arrive_intact() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    let hostile = "a&b=c d#e/f?g ü€ 100%";
    env.add_url(
        "1",
        &rx.url("/cb/{sub1}/x?click={clickid}&st={status}&name={status_name}&sum={sum}&rev={revenue}&cur={currency}&date={date}&ts={timestamp}&pid={pid}&offer={offerid}&goal={goal}&sub={sub1}&cf={custom_field_2}&tx={transactionid}&ev={event_id}&r={rand}&missing={sub8}"),
    )
    .await;
    let daemon = env.start().await;
    let extra = json!({
        "click_id": "clk-1", "payout": "1.50", "revenue": 2.125, "currency": "USD", "goal": "Sale",
        "sub1": hostile, "custom_field2": "cf2", "transaction_id": "tx9", "event_id": "e-1",
        "created_at": "2026-04-30T23:59:59+02:00",
    });
    env.publish(&[ev("c-macro", "confirmed", 0, extra)]).await;
    let req = rx.wait_for(1).await.remove(0);
    let want = [
        ("click", "clk-1"),
        ("st", "1"),
        ("name", "approved"),
        ("sum", "1.50"),
        ("rev", "2.125"),
        ("cur", "USD"),
        ("date", "2026-04-30 21:59:59"),
        ("ts", "1777586399"),
        ("pid", "2"),
        ("offer", "1"),
        ("goal", "Sale"),
        ("sub", hostile),
        ("cf", "cf2"),
        ("tx", "tx9"),
        ("ev", "e-1"),
        ("missing", ""),
    ];
    for (name, value) in want {
        assert_eq!(
            req.param(name).as_deref(),
            Some(value),
            "{name} in {}",
            req.target
        );
    }
    let names: Vec<String> = req.query().into_iter().map(|(k, _)| k).collect();
    assert_eq!(names.len(), 17, "no value added a parameter: {names:?}");
    assert!(
        uuid::Uuid::parse_str(&req.param("r").unwrap_or_default()).is_ok(),
        "{{rand}} is a UUID"
    );
    // The path keeps its segments: the hostile value stays inside one of them.
    let path = req.target.split('?').next().unwrap_or_default().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    assert_eq!(segments.len(), 3, "{path}");
    let decoded = percent_encoding::percent_decode_str(segments[1])
        .decode_utf8()
        .expect("utf8");
    assert_eq!(decoded, hostile);
    assert_eq!(req.header("idempotency-key"), Some(format!("e-1:{}", 1).as_str()));
    assert!(
        req.header("user-agent")
            .unwrap_or_default()
            .starts_with("cross-postback/")
    );
    daemon.stop().await;
}

#[tokio::test]
async fn urls_add_refuses_an_unknown_macro_by_name() {
    let env = Env::new().await;
    let add = |url: &str| env.cli(&["urls", "add", "--offer", "1", "--url", url]);
    let (code, out, err) = add("https://example.com/?a={clikid}");
    assert_ne!(code, 0, "{out}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("{clikid}") && err.contains("clickid"), "{err}");
    let (code, _, err) = add("https://{sub1}.example.com/");
    assert_ne!(code, 0);
    assert!(err.contains("host"), "{err}");
    let (code, out, err) = add("https://example.com/?a={clickid}");
    assert_eq!(code, 0, "{err}");
    assert!(out.trim().parse::<i64>().is_ok(), "prints the id: {out}");
}

/// Regression: `http://{` was accepted and then failed every attempt; `{ClickID}` and an
/// unclosed `{status` went out as literal text.
#[tokio::test]
async fn urls_add_refuses_what_cannot_be_meant_naming_the_nearest_macros() {
    let env = Env::new().await;
    let add = |url: &str| env.cli(&["urls", "add", "--offer", "1", "--url", url]);
    for (url, want) in [
        ("http://{", "host name"),
        ("https://example.com/?c={ClickID}", "did you mean `{clickid}`"),
        ("https://example.com/?s={status&x=1", "did you mean `{status}`"),
    ] {
        let (code, out, err) = add(url);
        assert_ne!(code, 0, "{url} accepted: {out}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains(want), "{url}: {err}");
    }
    let (_, _, err) = add("https://example.com/?a={clikid}");
    assert!(!err.contains("custom_field"), "the nearest names, not all: {err}");
}
