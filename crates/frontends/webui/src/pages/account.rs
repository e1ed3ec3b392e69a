//! The account part of the settings: the admin password, API tokens and the HTTPS certificate.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::Response;
use axum::{Extension, Form};
use flakeboot_store::{ApiTokenRecord, TokenScope};
use maud::html;
use serde::Deserialize;

use crate::auth::escape_for_log;
use crate::auth::guard::Principal;
use crate::auth::password;
use crate::auth::ratelimit::UserKey;
use crate::auth::secret::{random_token, sha256_hex};
use crate::error::WebError;
use crate::pages::Peer;
use crate::pages::settings::{MAX_TOKEN_DAYS, View, failed, render, saved};
use crate::state::WebState;

/// The password form.
#[derive(Debug, Default, Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

/// POST /settings/password
pub async fn change_password(
    State(state): State<WebState>,
    Peer(peer): Peer,
    Extension(principal): Extension<Principal>,
    Form(form): Form<PasswordForm>,
) -> Result<Response, WebError> {
    let Principal::Session { user, cookie, .. } = &principal else {
        return Err(WebError::Unauthorized);
    };
    let mut view = View::default();
    let name = user.clone();
    let Some(mut record) = state.db(move |s| s.user(&name)).await? else {
        return Err(WebError::Unauthorized);
    };
    // The current password is a guess like a sign-in, counted the same way: a stolen session
    // must not become a way to try passwords without limit.
    let attempt = state.reserve_attempt(peer, Some(UserKey::Account(user.clone())))?;
    let (current, phc) = (form.current.clone(), record.password_hash.clone());
    let (attempt, ok) = state
        .hash_for(attempt, move || password::verify(&current, &phc))
        .await?;
    if ok {
        state.attempt_succeeded(attempt);
    } else {
        view.errors
            .insert("current", "That is not the current password.".into());
    }
    if let Err(e) = password::check_new(&form.password, &form.confirm) {
        view.errors.insert("password", e.to_string());
    }
    if !view.errors.is_empty() {
        return failed(&state, &principal, view).await;
    }
    let pw = form.password.clone();
    record.password_hash = state
        .hash(move || password::hash(&pw))
        .await?
        .map_err(|e| WebError::Task(e.to_string()))?;
    state.db(move |s| s.put_user(&record)).await?;
    state.end_user_sessions(user, Some(cookie)).await?;
    tracing::info!(user = %escape_for_log(user), "password changed; other sessions ended");
    Ok(saved("password"))
}

/// The new-token form.
#[derive(Debug, Default, Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    name: String,
    /// `read_only` or `admin`; missing (an older form or script): admin, as before scopes.
    #[serde(default)]
    scope: Option<String>,
    /// Days until it expires; empty or missing: never.
    #[serde(default)]
    expires_days: String,
}

/// POST /settings/tokens: creates a token and shows it once.
pub async fn create_token(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
    Form(form): Form<TokenForm>,
) -> Result<Response, WebError> {
    // Tokens are made in a browser session only (the guard lets no token reach this page).
    if !matches!(principal, Principal::Session { .. }) {
        return Err(WebError::Unauthorized);
    }
    let name = form.name.trim().to_owned();
    let mut view = View::default();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        view.errors.insert(
            "token_name",
            "Give the token a short name (at most 64 characters).".into(),
        );
    }
    let scope = match form.scope.as_deref().map(str::trim) {
        None => Some(TokenScope::Admin),
        Some(s) => TokenScope::parse(s),
    };
    if scope.is_none() {
        view.errors
            .insert("token_scope", "Choose read only or admin.".into());
    }
    let days = match form.expires_days.trim() {
        "" => Ok(None),
        s => match s.parse::<u32>() {
            Ok(d @ 1..=MAX_TOKEN_DAYS) => Ok(Some(d)),
            _ => Err(()),
        },
    };
    if days.is_err() {
        view.errors.insert(
            "token_expires",
            format!("A number of days from 1 to {MAX_TOKEN_DAYS}, or empty for never."),
        );
    }
    let (Some(scope), Ok(days), true) = (scope, days, view.errors.is_empty()) else {
        return failed(&state, &principal, view).await;
    };
    let created = state.clock().wall();
    let expires = days.map(|d| created + Duration::from_secs(u64::from(d) * 86_400));
    let token = format!("fbt_{}", random_token()?);
    let record = ApiTokenRecord {
        id: 0,
        name: name.clone(),
        token_sha256: sha256_hex(&token),
        created,
        scope,
        expires,
    };
    let record = state.db(move |s| s.insert_api_token(&record)).await?;
    tracing::info!(
        id = record.id,
        name = %escape_for_log(&name),
        scope = scope.as_str(),
        expires_days = ?days,
        "API token created"
    );
    let notice = html! {
        div.notice.ok role="status" {
            p { "Token “" (name) "” (" (scope.as_str()) ") created. Copy it now: it is not shown again." }
            div.token #new-token { (token) }
        }
    };
    let page = render(
        &state,
        &principal,
        View {
            notice: Some(notice),
            ..View::default()
        },
    )
    .await?;
    Ok(crate::audit::noted(page, name))
}

/// POST /settings/tokens/{id}/delete
pub async fn delete_token(
    State(state): State<WebState>,
    Path(id): Path<u64>,
) -> Result<Response, WebError> {
    if !state.db(move |s| s.remove_api_token(id)).await? {
        return Err(WebError::NotFound {
            what: format!("token {id}"),
        });
    }
    tracing::info!(id, "API token revoked");
    Ok(saved("tokens"))
}

/// The certificate form.
#[derive(Debug, Default, Deserialize)]
pub struct CertForm {
    #[serde(default)]
    cert_pem: String,
    #[serde(default)]
    key_pem: String,
}

/// POST /settings/certificate
pub async fn certificate(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
    Form(form): Form<CertForm>,
) -> Result<Response, WebError> {
    let Some(certs) = state.certs() else {
        return Err(WebError::BadRequest {
            message: "this server does not use TLS".into(),
        });
    };
    match certs.replace(&form.cert_pem, &form.key_pem) {
        Ok(_) => Ok(saved("certificate")),
        Err(e @ crate::tls::TlsError::Io { .. }) => Err(e.into()),
        Err(e) => {
            let mut view = View::default();
            view.errors.insert("certificate", e.to_string());
            failed(&state, &principal, view).await
        }
    }
}
