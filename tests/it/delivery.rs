//! GET and POST, filters, offers without URLs, URL lifecycle.

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn post_with_default_json_body_with_a_json_template_and_a_form_template() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    let post = |body: Option<&str>, form: bool| {
        let body = body.map(str::to_owned);
        move |a: &mut cross_postback::cli::AddUrl| {
            a.method = cross_postback::cli::HttpMethod::Post;
            a.body = body;
            if form {
                a.content_type = cross_postback::cli::ContentType::Form;
            }
        }
    };
    env.add_url_with("1", &rx.url("/default"), post(None, false))
        .await;
    env.add_url_with(
        "1",
        &rx.url("/json"),
        post(
            Some(r#"{"click":"{clickid}","sum":"{sum}","note":"{comment}"}"#),
            false,
        ),
    )
    .await;
    env.add_url_with(
        "1",
        &rx.url("/form"),
        post(Some("click={clickid}&note={comment}"), true),
    )
    .await;
    let daemon = env.start().await;
    let note = "say \"hi\" & bye\n";
    env.publish(&[ev(
        "c1",
        "approved",
        0,
        json!({"click_id": "k1", "payout": "0.10", "comment": note}),
    )])
    .await;
    let reqs = rx.wait_for(3).await;
    let by_path = |p: &str| {
        reqs.iter()
            .find(|r| r.target == p)
            .cloned()
            .unwrap_or_else(|| panic!("no request to {p}"))
    };

    let default = by_path("/default");
    assert_eq!(default.method, "POST");
    assert_eq!(default.header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_str(&default.body).expect("json body");
    assert_eq!(body["conversion_id"], "c1");
    assert_eq!(body["status"], "approved");
    assert_eq!(body["payout"], "0.10");
    assert_eq!(body["comment"], note);

    let templ = by_path("/json");
    let body: serde_json::Value = serde_json::from_str(&templ.body).expect("json body");
    assert_eq!(body, json!({"click": "k1", "sum": "0.10", "note": note}));

    let form = by_path("/form");
    assert_eq!(
        form.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(form.body.as_bytes())
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    assert_eq!(
        pairs,
        vec![("click".into(), "k1".into()), ("note".into(), note.into())]
    );
    daemon.stop().await;
}

#[tokio::test]
async fn goal_filter_is_case_insensitive_and_status_filter_narrows() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    env.add_url_with("1", &rx.url("/goal?s={status_name}&c={conversion_id}"), |a| {
        a.goal = Some("SALE".into())
    })
    .await;
    env.add_url_with(
        "1",
        &rx.url("/approved-only?s={status_name}&c={conversion_id}"),
        |a| a.statuses = Some(vec!["approved".into()]),
    )
    .await;
    let daemon = env.start().await;
    env.publish(&[
        ev("c1", "pending", 0, json!({"goal": "sale"})),
        ev("c2", "pending", 0, json!({"goal": "lead"})),
        ev("c3", "approved", 0, json!({"goal": "Sale"})),
    ])
    .await;
    // c1 pending → /goal; c3 approved → /goal and /approved-only; c2 (lead, pending) → nothing.
    let reqs = rx.wait_for(3).await;
    let pg = env.pg().await;
    wait_count(&pg, "SELECT count(*) FROM conversions", 3).await;
    daemon.stop().await;
    let mut seen: Vec<String> = rx
        .requests()
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r.target.split('?').next().unwrap_or(""),
                r.param("c").unwrap_or_default()
            )
        })
        .collect();
    seen.sort();
    assert_eq!(seen, ["/approved-only c3", "/goal c1", "/goal c3"], "{reqs:?}");
}

#[tokio::test]
async fn an_offer_without_urls_sends_nothing_keeps_state_and_acks() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    env.add_url("other-offer", &rx.url("/x")).await;
    let daemon = env.start().await;
    env.publish(&[ev("c1", "approved", 0, json!({}))]).await;
    let pg = env.pg().await;
    wait_count(
        &pg,
        "SELECT count(*) FROM conversions WHERE conversion_id = 'c1'",
        1,
    )
    .await;
    daemon.stop().await;
    assert_eq!(env.ready_messages(&env.cfg.amqp.queue).await, 0);
    assert!(rx.requests().is_empty());
    assert_eq!(count(&pg, "SELECT count(*) FROM deliveries").await, 0);
}

#[tokio::test]
async fn disabling_a_url_cancels_its_pending_deliveries_and_enabling_revives_none() {
    let RetryWaiting {
        env,
        rx: _,
        url_id: id,
        daemon,
        pg,
    } = retry_waiting(ms(60_000), "/x", "approved").await;
    let (code, out, err) = env.cli_async(&["urls", "disable", &id.to_string()]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("cancelled 1"), "{out}");
    let (code, _, err) = env.cli_async(&["urls", "enable", &id.to_string()]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        count(&pg, "SELECT count(*) FROM deliveries WHERE state = 'cancelled'").await,
        1
    );
    let (code, _, err) = env.cli_async(&["urls", "remove", &id.to_string()]).await;
    assert_eq!(code, 0, "{err}");
    let (_, list, _) = env.cli_async(&["urls", "list"]).await;
    assert!(!list.contains("/x"), "removed URLs are not listed: {list}");
    assert_eq!(
        count(&pg, "SELECT count(*) FROM attempts").await,
        1,
        "attempts are kept"
    );
    daemon.stop().await;
}
