//! Sign-in with an admin token, and sign-out.

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::{internal, render, see_other, view};
use crate::store::access;
use crate::web::session;
use crate::web::state::AppState;

#[derive(Template)]
#[template(path = "signin.html")]
struct SignIn<'a> {
    error: Option<&'a str>,
}

/// The sign-in form (401: this request was not signed in), with an optional reason.
pub fn form(error: Option<&str>) -> Response {
    render(StatusCode::UNAUTHORIZED, &SignIn { error })
}

pub async fn sign_in(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !session::same_origin(&headers, &state.cfg.web_public_url()) {
        return super::cross_site();
    }
    let form = view::pairs(&String::from_utf8_lossy(&body));
    let Some(raw) = view::value(&form, "token") else {
        return form_error("Enter an admin token.");
    };
    let client = match state.pool.get().await {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    let token = match access::verify_token(&client, raw).await {
        Ok(Some(t)) => t,
        Ok(None) => return form_error("That token is not valid (unknown, expired or revoked)."),
        Err(e) => return internal(e),
    };
    match session::create(&client, token.id).await {
        Ok(id) => see_other("/", Some(session::set_cookie(&id, super::secure(&state)))),
        Err(e) => internal(e),
    }
}

fn form_error(text: &str) -> Response {
    render(StatusCode::UNAUTHORIZED, &SignIn { error: Some(text) })
}

pub async fn sign_out(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let form = view::pairs(&String::from_utf8_lossy(&body));
    if let Err(refused) = super::guard_post(&state, &headers, &form).await {
        return refused;
    }
    if let Some(raw) = session::cookie_id(&headers) {
        let client = match state.pool.get().await {
            Ok(c) => c,
            Err(e) => return internal(e),
        };
        if let Err(e) = session::delete(&client, &raw).await {
            return internal(e);
        }
    }
    see_other("/", Some(session::clear_cookie(super::secure(&state))))
}
