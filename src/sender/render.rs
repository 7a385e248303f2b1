//! A URL's request rendered from its row and an event: the one rendering that deliveries and
//! `urls test` share, so a test request is what a delivery would send.

use uuid::Uuid;

use super::Request;
use crate::event::Event;
use crate::macros::Escape;
use crate::store::dispatch::Method;
use crate::store::urls::UrlRow;

/// Renders `url`'s request for `event`: the URL, a POST's body (the event's canonical JSON
/// when the URL has no body template), and the URL's own headers, escaped header-safe. The
/// error says why the templates do not render; it quotes no header value.
pub fn request(url: &UrlRow, event: &Event, idempotency_key: String) -> Result<Request, String> {
    let rand = Uuid::new_v4().to_string();
    let templates = url.templates.as_ref().map_err(Clone::clone)?;
    let rendered = templates
        .url
        .render_url(event, &rand)
        .map_err(|e| e.to_string())?;
    let method = Method::from_stored(&url.method);
    let body = match method {
        Method::Post => {
            let escape = url.body_escape();
            let text = match &templates.body {
                Some(t) => t.render(event, escape, &rand),
                None => event.canonical_json().to_string(),
            };
            Some((bytes::Bytes::from(text), escape.mime()))
        }
        Method::Get => None,
    };
    let headers = templates
        .headers
        .iter()
        .map(|(name, t)| (name.clone(), t.render(event, Escape::Header, &rand)))
        .collect();
    Ok(Request {
        method: method.to_reqwest(),
        url: rendered,
        body,
        idempotency_key,
        follow_redirects: url.follow_redirects,
        headers,
        timeout: url.timeout(),
    })
}
