//! Partner links through the API and the CLI: made with one validation, listed with their
//! use, revoked at once; only hashes stored.

use cross_postback::store::access::{self, Lookup};
use serde_json::Value;

use crate::harness::*;
use crate::web_api::Web;

fn raw_of(address: &str) -> &str {
    address.rsplit("/s/").next().unwrap_or("")
}

#[tokio::test]
async fn links_are_made_listed_and_revoked_through_the_api() {
    let w = Web::start().await;
    let (status, v) = w
        .json(
            "POST",
            "/api/v1/links",
            Some(r#"{"affiliate_ids": ["7"], "last": "30d", "expires": "90s", "label": "Acme"}"#),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_i64().expect("id");
    let address = v["url"].as_str().expect("the address, once").to_owned();
    let public = w.env.cfg.web_public_url();
    assert!(address.starts_with(&format!("{public}/s/")), "{address}");
    assert!(raw_of(&address).len() >= 22, "≥128 bits");
    assert_eq!(
        v["columns"].as_array().map(|c| c.iter().any(|c| c == "revenue")),
        Some(false)
    );
    assert_eq!(
        (v["last"].as_str(), v["export"].as_bool()),
        (Some("30d"), Some(true))
    );

    let (status, list) = w.json("GET", "/api/v1/links", None).await;
    assert_eq!(status, 200);
    let listed = &list[0];
    assert_eq!(
        (listed["id"].as_i64(), listed["state"].as_str()),
        (Some(id), Some("active"))
    );
    assert!(listed.get("url").is_none(), "the address is shown once only");
    assert!(!list.to_string().contains(raw_of(&address)));

    let pg = w.env.pg().await;
    let dump = rows(&pg, "SELECT s::text FROM share_links s").await;
    assert!(
        !format!("{dump:?}").contains(raw_of(&address)),
        "a raw token in the table"
    );
    let client = w.env.pool().get().await.expect("connect");
    assert!(
        matches!(access::lookup_link(&client, raw_of(&address)).await, Ok(Lookup::Found(l)) if l.id == id)
    );
    let mut altered = raw_of(&address).to_owned();
    altered.replace_range(0..1, if altered.starts_with('A') { "B" } else { "A" });
    assert_eq!(
        access::lookup_link(&client, &altered).await.ok(),
        Some(Lookup::Unknown)
    );

    let (status, v) = w.json("DELETE", &format!("/api/v1/links/{id}"), None).await;
    assert_eq!(status, 200, "{v}");
    assert!(matches!(
        access::lookup_link(&client, raw_of(&address)).await,
        Ok(Lookup::Revoked(_))
    ));
    let (_, list) = w.json("GET", "/api/v1/links", None).await;
    assert_eq!(list[0]["state"], "revoked");
    assert_eq!(w.json("DELETE", "/api/v1/links/999999", None).await.0, 404);
    assert_eq!(w.json("DELETE", "/api/v1/links/x", None).await.0, 400);
}

#[tokio::test]
async fn a_link_of_seconds_expires_and_bad_scopes_name_the_field() {
    let w = Web::start().await;
    let (status, v) = w
        .json(
            "POST",
            "/api/v1/links",
            Some(r#"{"offer_ids": ["5"], "expires": "1s"}"#),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let address = v["url"].as_str().expect("url").to_owned();
    let client = w.env.pool().get().await.expect("connect");
    eventually("the 1 s link to expire", || {
        let client = &client;
        let raw = raw_of(&address).to_owned();
        async move { matches!(access::lookup_link(client, &raw).await, Ok(Lookup::Expired(_))).then_some(()) }
    })
    .await;
    for (body, field) in [
        (r#"{}"#, "affiliate_ids"),
        (r#"{"offer_ids": ["5"], "expires": "366d"}"#, "expires"),
        (r#"{"offer_ids": ["5"], "expires": "0"}"#, "expires"),
        (
            r#"{"offer_ids": ["5"], "last": "1d", "from": "2025-01-01"}"#,
            "last",
        ),
        (r#"{"offer_ids": ["5"], "columns": ["secret"]}"#, "columns"),
        (r#"{"offer_ids": ["5"], "from": "soon"}"#, "from"),
        (r#"{"offer_ids": [5]}"#, "offer_ids[0]"),
        (r#"{"offer_ids": ["5"], "colour": "red"}"#, "colour"),
        (r#"[]"#, "body"),
    ] {
        let (status, v): (u16, Value) = w.json("POST", "/api/v1/links", Some(body)).await;
        assert_eq!(status, 400, "{body}: {v}");
        let message = v["error"]["message"].as_str().unwrap_or("");
        assert!(
            message.starts_with(&format!("parameter `{field}`")),
            "{body}: {message}"
        );
    }
}

#[tokio::test]
async fn the_cli_makes_lists_and_revokes_links_with_the_same_checks() {
    let w = Web::start().await;
    let (code, out, err) = w
        .env
        .cli_async(&[
            "links",
            "create",
            "--affiliate",
            "7",
            "--affiliate",
            "8",
            "--offer",
            "5",
            "--from",
            "2025-12-01",
            "--to",
            "2026-01-01",
            "--columns",
            "date,offer,status",
            "--no-export",
            "--expires",
            "45s",
            "--label",
            "Acme",
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    let address = out.lines().last().expect("a last line").to_owned();
    assert!(
        address.starts_with(&format!("{}/s/", w.env.cfg.web_public_url())),
        "{out}"
    );
    let (_, list) = w.json("GET", "/api/v1/links", None).await;
    let l = &list[0];
    assert_eq!(l["affiliate_ids"], serde_json::json!(["7", "8"]));
    assert_eq!(l["columns"], serde_json::json!(["date", "offer", "status"]));
    assert_eq!(
        (l["export"].as_bool(), l["label"].as_str()),
        (Some(false), Some("Acme"))
    );
    let (code, out, _) = w.env.cli_async(&["links", "list", "--format", "json"]).await;
    assert_eq!(code, 0);
    let listed: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        (listed[0]["uses"].as_i64(), listed[0]["state"].as_str()),
        (Some(0), Some("active"))
    );
    let (code, _, err) = w
        .env
        .cli_async(&["links", "create", "--offer", "5", "--expires", "400d"])
        .await;
    assert_ne!(code, 0);
    assert!(
        err.contains("--expires") && err.contains("web.max_link_lifetime"),
        "{err}"
    );
    let (code, _, err) = w.env.cli_async(&["links", "create"]).await;
    assert!(code != 0 && err.contains("--affiliate"), "{err}");
    let id = l["id"].as_i64().expect("id").to_string();
    let (code, out, _) = w.env.cli_async(&["links", "revoke", &id]).await;
    assert!(
        code == 0 && out.starts_with(&format!("revoked link {id}")),
        "{out}"
    );
    let (code, _, err) = w.env.cli_async(&["links", "revoke", "999999"]).await;
    assert!(code != 0 && err.contains("no link with id 999999"), "{err}");
}
