//! The statistics page (server-rendered HTML, no script): sign-in, the table with its filters,
//! "Edit columns", paging and export, a delivery with "Send again", `/urls`, and "Get link".
//! One module per page; every state-changing form goes through [`guard_post`].

use askama::Template;
use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::session::{self, Session};
use super::state::AppState;

mod delivery;
pub mod links;
mod signin;
pub mod table;
mod url_views;
mod urls;
pub mod view;

/// The page's routes (the admin side; the partner pages are `web::partner`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(table::show))
        .route("/columns", get(table::edit_columns))
        .route("/export.csv", get(table::export))
        .route("/signin", post(signin::sign_in))
        .route("/signout", post(signin::sign_out))
        .route("/deliveries/{id}", get(delivery::show))
        .route("/deliveries/{id}/send-again", post(delivery::send_again))
        .route("/urls", get(urls::list).post(urls::add))
        .route("/urls/{id}/edit", get(urls::edit_form).post(urls::edit))
        .route("/urls/{id}/{action}", post(urls::action))
        .route("/links", get(links::list).post(links::create))
        .route("/links/new", get(links::new_form))
        .route("/links/{id}/revoke", post(links::revoke))
        .route("/static/page.css", get(css))
}

const CSS: &str = include_str!("../../../static/page.css");

async fn css() -> Response {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

/// What every HTML answer of ours carries: nothing cached, nothing framed, nothing loaded or
/// posted anywhere but here.
pub fn html_headers(headers: &mut HeaderMap) {
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(headers, "content-type", "text/html; charset=utf-8");
    set(headers, "cache-control", "no-store");
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "x-frame-options", "DENY");
    // Not `no-referrer` here: with it a browser sends `Origin: null` on the page's own POSTs,
    // which the cross-site check must refuse. Partner pages override it with `no-referrer`
    // (they have no form that posts).
    set(headers, "referrer-policy", "same-origin");
    set(
        headers,
        "content-security-policy",
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
    );
}

/// A template as an HTML answer with `status`; a template that fails to render (it cannot
/// with these types, but it returns a `Result`) is a plain 500 that says so.
pub fn render(status: StatusCode, t: &impl Template) -> Response {
    match t.render() {
        Ok(body) => {
            let mut r = (status, body).into_response();
            html_headers(r.headers_mut());
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "a page template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct Message<'a> {
    pub title: &'a str,
    pub text: String,
    pub error: bool,
    pub back: Option<&'a str>,
}

/// An error page: `title` and one line of text.
pub fn message(status: StatusCode, title: &str, text: impl Into<String>) -> Response {
    render(
        status,
        &Message {
            title,
            text: text.into(),
            error: true,
            back: Some("/"),
        },
    )
}

/// A failure of ours (the database, mostly), logged with its causes and shown in one line
/// that holds no detail of it.
pub fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "the page could not answer");
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Not available",
        "The page cannot read the database right now; try again shortly.",
    )
}

/// The signed-in session of this request, or the answer to give instead: the sign-in form.
pub async fn admin(state: &AppState, headers: &HeaderMap) -> Result<Session, Response> {
    let Some(raw) = session::cookie_id(headers) else {
        return Err(signin::form(None));
    };
    let client = state.pool.get().await.map_err(internal)?;
    match session::lookup(&client, &raw).await.map_err(internal)? {
        Some(s) => Ok(s),
        None => Err(signin::form(Some("Your session has ended; sign in again."))),
    }
}

/// The checks of a state-changing form, in order: it comes from this site (else 403), the
/// browser is signed in (else the sign-in form), and the form carries the session's token
/// (else 403).
pub async fn guard_post(
    state: &AppState,
    headers: &HeaderMap,
    form: &[(String, String)],
) -> Result<Session, Response> {
    if !session::same_origin(headers, &state.cfg.web_public_url()) {
        return Err(cross_site());
    }
    let s = admin(state, headers).await?;
    if !session::csrf_ok(&s, view::value(form, "csrf")) {
        return Err(message(
            StatusCode::FORBIDDEN,
            "Refused",
            "This form is out of date or did not come from this page; reload the page and try again.",
        ));
    }
    Ok(s)
}

pub fn cross_site() -> Response {
    message(
        StatusCode::FORBIDDEN,
        "Refused",
        "A request from another site may not change anything here.",
    )
}

/// Whether the page is served over https (the cookie is then `Secure`).
pub fn secure(state: &AppState) -> bool {
    state.cfg.web_public_url().starts_with("https://")
}

/// A 303 to `to`, optionally with a `Set-Cookie`.
pub fn see_other(to: &str, cookie: Option<String>) -> Response {
    let mut r = Redirect::to(to).into_response();
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        r.headers_mut().insert(SET_COOKIE, c);
    }
    r
}
