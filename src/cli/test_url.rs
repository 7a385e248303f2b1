//! `urls test ID [--event FILE]`: one request sent now through the daemon's sender, printed
//! with its response; nothing is recorded.

use std::path::PathBuf;

use clap::Args;

use super::urls::{read_event, shown_header, shown_url};
use crate::output::printable;
use crate::urls_service::{TestOutcome, UrlService};

#[derive(Debug, Args)]
pub struct TestUrl {
    /// The URL's id (see `urls list`).
    pub id: i64,
    /// An event (one JSON document, checked as the daemon checks messages) to render the
    /// request from; without it, sample values of the URL's offer, goal and first status.
    #[arg(long, value_name = "FILE")]
    pub event: Option<PathBuf>,
    /// Show the URL's tokens, keys and passwords, and header values, instead of ***.
    #[arg(long)]
    pub show_secrets: bool,
}

/// Sends and prints; an answer other than 2xx (or none) is an error, so the exit code is 1.
pub(super) async fn run(service: &UrlService, args: TestUrl) -> anyhow::Result<()> {
    let event = match &args.event {
        Some(path) => Some(UrlService::parse_event(&read_event(path)?)?),
        None => None,
    };
    let outcome = service.test(args.id, event).await?;
    print!("{}", render(&outcome, args.show_secrets));
    match (outcome.response.http_code, &outcome.response.error) {
        (Some(code), None) => {
            debug_assert!((200..300).contains(&code));
            Ok(())
        }
        (Some(code), _) => anyhow::bail!("the URL answered HTTP {code}, not 2xx"),
        (None, _) => anyhow::bail!("the request got no answer"),
    }
}

/// The request and the response as printed: secrets masked unless `show_secrets`, every
/// text escaped so that it cannot drive the terminal.
fn render(outcome: &TestOutcome, show_secrets: bool) -> String {
    let req = &outcome.request;
    let res = &outcome.response;
    let mut out = String::from("request:\n");
    out.push_str(&format!(
        "  {} {}\n",
        req.method,
        printable(&shown_url(&req.url, show_secrets))
    ));
    out.push_str(&format!(
        "  Idempotency-Key: {}\n",
        printable(&req.idempotency_key)
    ));
    if let Some((_, mime)) = &req.body {
        out.push_str(&format!("  Content-Type: {mime}\n"));
    }
    for (name, value) in &req.headers {
        out.push_str(&format!(
            "  {}\n",
            printable(&shown_header(name, value, show_secrets))
        ));
    }
    if let Some((body, _)) = &req.body {
        out.push_str(&format!(
            "  body: {}\n",
            printable(&String::from_utf8_lossy(body))
        ));
    }
    out.push_str("response:\n");
    let ms = res.duration.as_millis();
    match res.http_code {
        Some(code) => out.push_str(&format!("  HTTP {code} in {ms} ms\n")),
        None => out.push_str(&format!("  no answer after {ms} ms\n")),
    }
    if let Some((code, text)) = &res.error {
        out.push_str(&format!(
            "  error: {}: {}\n",
            code.as_str(),
            printable(&crate::mask::mask_url(text))
        ));
    }
    out.push_str(&format!(
        "  body (first KiB): {}\n",
        printable(res.excerpt.as_deref().unwrap_or(""))
    ));
    out
}
