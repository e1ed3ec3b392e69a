//! Server-rendered pages (maud). They work without JavaScript; only the build page adds a
//! small embedded script for its live log, and the Firmware page one for its upload (which
//! has no form fallback: `flakeboot firmware upload` does it without a browser).

pub mod access_tokens;
pub mod account;
pub mod audit_log;
pub mod build;
pub mod dashboard;
pub mod firmware;
pub mod flake_follow;
pub mod flake_remove;
pub mod flakes;
pub mod generations;
pub mod hosts;
pub mod layout;
pub mod login;
pub mod machine_actions;
pub mod machines;
pub mod settings;
pub mod settings_input;
pub mod settings_wan;
pub mod setup;
pub mod setup_restore;
pub mod timeline;
pub mod vpn;
pub mod vpn_config;
pub mod vpn_form;
pub mod vpn_peers;

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::auth::guard::cookie;
use crate::auth::secret::{constant_time_eq, random_token};
use crate::error::WebError;

/// The client's address (from the connection), for rate limits and logs.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// The cookie of the forms shown before a session exists (login, setup): a double-submit
/// CSRF token.
pub const FORM_COOKIE: &str = "__Host-flakeboot-form";

/// A new pre-session form token and the `Set-Cookie` value that carries it.
pub(crate) fn new_form_token() -> Result<(String, HeaderValue), WebError> {
    let token = random_token()?;
    let cookie = format!("{FORM_COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict");
    let value = HeaderValue::from_str(&cookie).map_err(|e| WebError::Task(e.to_string()))?;
    Ok((token, value))
}

/// Checks a pre-session form's token against its cookie.
pub(crate) fn check_form_token(
    headers: &axum::http::HeaderMap,
    field: &str,
) -> Result<(), WebError> {
    match cookie(headers, FORM_COOKIE) {
        Some(c) if !field.is_empty() && constant_time_eq(c, field) => Ok(()),
        _ => Err(WebError::BadCsrf),
    }
}

/// A page response that also sets a cookie.
pub(crate) fn with_cookie(response: impl IntoResponse, cookie: HeaderValue) -> Response {
    let mut response = response.into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}
