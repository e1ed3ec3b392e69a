//! Sign in and out. Sign-ins are rate-limited per client address and per user name, counted
//! before the password is checked, and the checks run a few at a time (see [`crate::auth`]).

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use flakeboot_store::AuditRecord;
use maud::{Markup, html};
use serde::Deserialize;

use crate::auth::escape_for_log;
use crate::auth::guard::{Principal, clear_session_cookie, session_cookie};
use crate::auth::password;
use crate::auth::ratelimit::UserKey;
use crate::error::WebError;
use crate::pages::layout::{bare_page, field_error};
use crate::pages::{Peer, check_form_token, new_form_token, with_cookie};
use crate::state::WebState;

/// The sign-in form.
#[derive(Debug, Default, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    form: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
}

fn render(token: &str, user: &str, error: Option<&str>) -> Markup {
    bare_page(
        "Sign in",
        html! {
            h1 { "Sign in" }
            form.stack method="post" action="/login" {
                input type="hidden" name="form" value=(token);
                div {
                    label for="user" { "User" }
                    input #user type="text" name="user" value=(user) autocomplete="username";
                }
                div {
                    label for="password" { "Password" }
                    input #password type="password" name="password" autocomplete="current-password"
                        class=[error.is_some().then_some("invalid")];
                    (field_error(error))
                }
                div.actions { button type="submit" { "Sign in" } }
            }
        },
    )
}

fn header_value(s: &str) -> Result<HeaderValue, WebError> {
    HeaderValue::from_str(s).map_err(|e| WebError::Task(e.to_string()))
}

/// GET /login
pub async fn show(State(state): State<WebState>) -> Result<Response, WebError> {
    if !state.setup_done() {
        return Ok(Redirect::to("/setup").into_response());
    }
    let (token, cookie) = new_form_token()?;
    Ok(with_cookie(render(&token, "admin", None), cookie))
}

/// POST /login
pub async fn submit(
    State(state): State<WebState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, WebError> {
    if !state.setup_done() {
        return Ok(Redirect::to("/setup").into_response());
    }
    check_form_token(&headers, &form.form)?;
    let name = form.user.trim().to_owned();
    let logged_name = escape_for_log(&name);
    let user = {
        let name = name.clone();
        state.db(move |s| s.user(&name)).await?
    };
    // Counted before the slow hash, against the address, the user name and all addresses
    // together; un-counted only if it succeeds. A burst of parallel attempts gets no more hashes
    // than the limit.
    let key = match &user {
        Some(user) => UserKey::Account(user.name.clone()),
        None => UserKey::Unknown,
    };
    let attempt = match state.reserve_attempt(peer, Some(key)) {
        Ok(attempt) => attempt,
        Err(refused) => {
            tracing::info!(?peer, user = %logged_name, "sign-in refused: too many attempts");
            return form_again(&name, &refused);
        }
    };
    // An unknown user costs the same argon2 work as a wrong password: no name probing.
    let (known, phc) = match user {
        Some(user) => (true, user.password_hash),
        None => (false, password::dummy_hash().to_owned()),
    };
    let pw = form.password.clone();
    let (attempt, verified) = match state
        .hash_for(attempt, move || password::verify(&pw, &phc))
        .await
    {
        Ok(checked) => checked,
        Err(e @ (WebError::Busy | WebError::RateLimited { .. })) => {
            tracing::info!(?peer, user = %logged_name, "sign-in not checked: {e}");
            return form_again(&name, &e);
        }
        Err(e) => return Err(e),
    };
    let ok = verified && known;
    if !ok {
        tracing::info!(?peer, user = %logged_name, "failed sign-in");
        // The name only when it is an account: a name that is none may be a password typed
        // into the wrong field.
        let target = if known { name.clone() } else { String::new() };
        state
            .audit(audit_entry(
                &state,
                None,
                "login.failed",
                target,
                peer,
                StatusCode::UNAUTHORIZED,
            ))
            .await;
        let (token, cookie) = new_form_token()?;
        let page = render(&token, &name, Some("Wrong user or password."));
        return Ok(with_cookie((StatusCode::UNAUTHORIZED, page), cookie));
    }
    state.attempt_succeeded(attempt);
    let id = state.create_session(&name).await?;
    tracing::info!(?peer, user = %logged_name, "signed in");
    state
        .audit(audit_entry(
            &state,
            Some(&name),
            "login",
            String::new(),
            peer,
            StatusCode::SEE_OTHER,
        ))
        .await;
    let mut response = Redirect::to("/").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, header_value(&session_cookie(&id))?);
    Ok(response)
}

/// An audit entry of a sign-in (a public route: the audit middleware does not see it).
fn audit_entry(
    state: &WebState,
    actor: Option<&str>,
    action: &str,
    target: String,
    client: Option<std::net::IpAddr>,
    status: StatusCode,
) -> AuditRecord {
    AuditRecord {
        at: state.clock().wall(),
        actor: actor.map(str::to_owned),
        action: action.to_owned(),
        target,
        client,
        status: status.as_u16(),
    }
}

/// A sign-in refused before its password was checked: the form again with the user name as
/// typed and when to try again (429 and `Retry-After`), not a bare error page.
fn form_again(user: &str, refused: &WebError) -> Result<Response, WebError> {
    let message = match refused {
        WebError::RateLimited { retry_after } => format!(
            "Too many failed sign-ins: try again in {} s.",
            retry_after.as_secs().max(1)
        ),
        WebError::Busy => "Too many sign-ins at once: try again in a moment.".to_owned(),
        other => other.to_string(),
    };
    let (token, cookie) = new_form_token()?;
    let mut response = with_cookie(
        (
            StatusCode::TOO_MANY_REQUESTS,
            render(&token, user, Some(&message)),
        ),
        cookie,
    );
    if let Some(wait) = refused.retry_after() {
        response.headers_mut().insert(header::RETRY_AFTER, wait);
    }
    Ok(response)
}

/// POST /logout
pub async fn logout(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, WebError> {
    if let Principal::Session { cookie, .. } = &principal {
        state.end_session(cookie).await?;
    }
    let mut response = Redirect::to("/login").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, header_value(&clear_session_cookie())?);
    Ok(response)
}
