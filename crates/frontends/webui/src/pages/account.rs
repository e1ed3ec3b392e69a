//! The account part of the settings: the admin password, API tokens and the HTTPS certificate.

use std::time::SystemTime;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use flakeboot_store::ApiTokenRecord;
use maud::html;
use serde::Deserialize;

use crate::auth::guard::Principal;
use crate::auth::password;
use crate::auth::secret::{random_token, sha256_hex};
use crate::error::WebError;
use crate::pages::settings::{View, failed, render, saved};
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
    let (current, phc) = (form.current.clone(), record.password_hash.clone());
    let ok = tokio::task::spawn_blocking(move || password::verify(&current, &phc))
        .await
        .map_err(|e| WebError::Task(e.to_string()))?;
    if !ok {
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
    record.password_hash = tokio::task::spawn_blocking(move || password::hash(&pw))
        .await
        .map_err(|e| WebError::Task(e.to_string()))?
        .map_err(|e| WebError::Task(e.to_string()))?;
    state.db(move |s| s.put_user(&record)).await?;
    state.sessions().remove_user(user, Some(cookie));
    tracing::info!(%user, "password changed; other sessions ended");
    Ok(saved("password"))
}

/// The new-token form.
#[derive(Debug, Default, Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    name: String,
}

/// POST /settings/tokens: creates a token and shows it once.
pub async fn create_token(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
    Form(form): Form<TokenForm>,
) -> Result<Response, WebError> {
    let name = form.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        let mut view = View::default();
        view.errors.insert(
            "token_name",
            "Give the token a short name (at most 64 characters).".into(),
        );
        return failed(&state, &principal, view).await;
    }
    let token = format!("fbt_{}", random_token()?);
    let record = ApiTokenRecord {
        id: 0,
        name: name.clone(),
        token_sha256: sha256_hex(&token),
        created: SystemTime::now(),
    };
    state.db(move |s| s.insert_api_token(&record)).await?;
    tracing::info!(%name, "API token created");
    let notice = html! {
        div.notice.ok role="status" {
            p { "Token “" (name) "” created. Copy it now: it is not shown again." }
            div.token #new-token { (token) }
        }
    };
    Ok(render(
        &state,
        &principal,
        View {
            notice: Some(notice),
            ..View::default()
        },
    )
    .await?
    .into_response())
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
