//! First-run setup: the setup code from the console, the admin password, the LAN port and the
//! DHCP mode. Reachable only until an admin exists.

use std::time::SystemTime;

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use flakeboot_store::{AuditRecord, DhcpModeSetting, UserRecord};
use maud::{Markup, html};
use serde::Deserialize;

use crate::auth::escape_for_log;
use crate::auth::guard::session_cookie;
use crate::auth::password;
use crate::error::WebError;
use crate::pages::layout::{bare_page, field_error};
use crate::pages::{Peer, check_form_token, new_form_token, with_cookie};
use crate::state::WebState;

/// The admin account's name.
pub const ADMIN: &str = "admin";

/// The setup form.
#[derive(Debug, Default, Deserialize)]
pub struct SetupForm {
    #[serde(default)]
    form: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    lan_interface: String,
    #[serde(default)]
    dhcp_mode: String,
    /// "yes": router mode although another full DHCP server answers on the LAN.
    #[serde(default)]
    confirm_router: String,
}

#[derive(Debug, Default)]
struct Errors {
    code: Option<String>,
    password: Option<String>,
    lan: Option<String>,
    mode: Option<String>,
    /// Router mode was chosen beside another full DHCP server: ask to confirm it.
    confirm_router: bool,
}

/// The box that confirms router mode beside another full DHCP server (form field
/// `confirm_router=yes`), shared with the settings page; `label` says what ticking it does.
pub fn confirm_router_box(label: &str) -> Markup {
    html! {
        label.choice.confirm {
            input type="checkbox" name="confirm_router" value="yes";
            span { strong { (label) } span.muted.small { "I will turn the other DHCP server off." } }
        }
    }
}

/// The plain explanation of the DHCP modes, shared with the settings page.
pub fn dhcp_mode_choices(current: DhcpModeSetting) -> Markup {
    let choice = |value: DhcpModeSetting, title: &str, text: &str| {
        html! {
            label.choice {
                input type="radio" name="dhcp_mode" value=(value.as_str()) checked[current == value];
                span { strong { (title) } span.muted.small { (text) } }
            }
        }
    };
    html! {
        div.choices {
            (choice(DhcpModeSetting::Proxy, "Proxy mode (recommended)",
                "Your router keeps handing out addresses. flakeboot only answers machines that \
                 ask to boot from the network and tells them where to get their boot files. \
                 Nothing else on your network changes."))
            (choice(DhcpModeSetting::Router, "Router mode",
                "flakeboot becomes the DHCP server of this network: it hands out every address. \
                 Use it only on a network without another DHCP server (turn your router's off), \
                 or two servers will fight over the addresses."))
            (choice(DhcpModeSetting::Off, "Off",
                "flakeboot answers no DHCP at all; another DHCP server must send the boot \
                 options itself."))
        }
    }
}

fn render(state: &WebState, form: &SetupForm, token: &str, errors: &Errors) -> Markup {
    let mode = parse_mode(&form.dhcp_mode).unwrap_or_default();
    let interfaces = &state.config().interfaces;
    let lan = if form.lan_interface.is_empty() {
        state.settings().lan_interface
    } else {
        form.lan_interface.clone()
    };
    bare_page(
        "Set up",
        html! {
            h1 { "Set up this appliance" }
            p.muted { "This page is only here until setup is done." }
            form.stack method="post" action="/setup" {
                input type="hidden" name="form" value=(token);
                div {
                    label for="code" { "Setup code"
                        span.hint { "Printed on the appliance's console and in its log when it started. \
                                     It proves you have the appliance in front of you." } }
                    input #code type="text" name="code" autocomplete="off" autocapitalize="characters"
                        placeholder="XXXX-XXXX-XXXX" value=(form.code)
                        class=[errors.code.is_some().then_some("invalid")];
                    (field_error(errors.code.as_deref()))
                }
                div {
                    label for="password" { "Admin password"
                        span.hint { "At least " (password::MIN_PASSWORD_LEN) " characters. You sign in as “admin”." } }
                    input #password type="password" name="password" autocomplete="new-password"
                        class=[errors.password.is_some().then_some("invalid")];
                }
                div {
                    label for="confirm" { "Admin password again" }
                    input #confirm type="password" name="confirm" autocomplete="new-password"
                        class=[errors.password.is_some().then_some("invalid")];
                    (field_error(errors.password.as_deref()))
                }
                div {
                    label for="lan_interface" { "LAN port"
                        span.hint { "The network port that faces the machines to boot." } }
                    @if interfaces.is_empty() {
                        input #lan_interface type="text" name="lan_interface" value=(lan);
                    } @else {
                        select #lan_interface name="lan_interface" {
                            @for i in interfaces {
                                option value=(i) selected[*i == lan] { (i) }
                            }
                        }
                    }
                    (field_error(errors.lan.as_deref()))
                }
                fieldset.plain {
                    legend { "DHCP mode" }
                    (dhcp_mode_choices(mode))
                    (field_error(errors.mode.as_deref()))
                    @if errors.confirm_router { (confirm_router_box("Use router mode anyway")) }
                }
                div.actions { button type="submit" { "Finish setup" } }
            }
            @if state.setup_restore().is_some() {
                (restore_form(token))
            }
        },
    )
}

/// Restoring a backup instead of setting up: the archive, its passphrase and the setup code,
/// sent by `/static/restore.js` to `POST /setup/restore` (pages/setup_restore.rs).
fn restore_form(token: &str) -> Markup {
    html! {
        hr;
        h2 { "Or restore a backup" }
        p.muted {
            "Replacing an appliance? Restore the old one's backup here instead: its settings, \
             machines, keys and admin password come back, and the appliance starts again with \
             them (your browser may ask again about its certificate: it is the old one's)."
        }
        form.stack #restore-upload data-form=(token) {
            div {
                label for="restore-code" { "Setup code" }
                input #restore-code type="text" name="code" autocomplete="off"
                    autocapitalize="characters" placeholder="XXXX-XXXX-XXXX";
            }
            div {
                label for="restore-file" { "Backup file" span.hint { "flakeboot-backup-….age" } }
                input #restore-file type="file" name="file" accept=".age";
            }
            div {
                label for="restore-passphrase" { "The backup's passphrase" }
                input #restore-passphrase type="password" name="passphrase" autocomplete="off";
            }
            progress.bar #restore-progress hidden {}
            p #restore-result aria-live="polite" {}
            div.actions { button type="submit" { "Restore" } }
        }
        script src="/static/upload.js" {}
        script src="/static/restore.js" {}
    }
}

/// Parses a DHCP mode from a form.
pub fn parse_mode(s: &str) -> Option<DhcpModeSetting> {
    match s {
        "proxy" => Some(DhcpModeSetting::Proxy),
        "router" => Some(DhcpModeSetting::Router),
        "off" => Some(DhcpModeSetting::Off),
        _ => None,
    }
}

fn done() -> Response {
    Redirect::to("/login").into_response()
}

/// GET /setup
pub async fn show(State(state): State<WebState>) -> Result<Response, WebError> {
    if state.setup_done() {
        return Ok(done());
    }
    let (token, cookie) = new_form_token()?;
    // Preselect the mode the appliance runs in now (the config file's), so someone who only
    // types the code and a password does not switch a router-mode appliance to proxy.
    let form = SetupForm {
        dhcp_mode: state.settings().dhcp_mode.as_str().into(),
        ..SetupForm::default()
    };
    Ok(with_cookie(
        render(&state, &form, &token, &Errors::default()),
        cookie,
    ))
}

/// The form as the user filled it, with its errors and a fresh form token.
fn form_again(
    state: &WebState,
    form: &SetupForm,
    errors: &Errors,
    status: StatusCode,
) -> Result<Response, WebError> {
    let (token, cookie) = new_form_token()?;
    Ok(with_cookie(
        (status, render(state, form, &token, errors)),
        cookie,
    ))
}

/// POST /setup
pub async fn submit(
    State(state): State<WebState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    Form(form): Form<SetupForm>,
) -> Result<Response, WebError> {
    if state.setup_done() {
        return Ok(done());
    }
    check_form_token(&headers, &form.form)?;
    // Counted before the code is checked (per address; the code has 60 bits), un-counted when
    // the code is right.
    let attempt = match state.reserve_attempt(peer, None) {
        Ok(attempt) => attempt,
        Err(refused) => {
            tracing::info!(?peer, "setup attempt refused: too many attempts");
            // The form again, as typed, with the wait where the code goes.
            let errors = Errors {
                code: Some(match &refused {
                    WebError::RateLimited { retry_after } => format!(
                        "Too many wrong codes from this address: try again in {} s.",
                        retry_after.as_secs().max(1)
                    ),
                    other => other.to_string(),
                }),
                ..Errors::default()
            };
            let mut response = form_again(&state, &form, &errors, StatusCode::TOO_MANY_REQUESTS)?;
            if let Some(wait) = refused.retry_after() {
                response.headers_mut().insert(header::RETRY_AFTER, wait);
            }
            return Ok(response);
        }
    };

    let mut errors = Errors::default();
    let code_ok = state.setup_code().is_some_and(|c| c.matches(&form.code));
    if code_ok {
        // The code is what the limit guards: a right code with a mistyped password is no
        // guess.
        state.attempt_succeeded(attempt);
    } else {
        tracing::info!(?peer, "setup attempt with a wrong setup code");
        errors.code = Some("That is not the setup code shown on the console.".into());
        state
            .audit(AuditRecord {
                at: state.clock().wall(),
                actor: None,
                action: "setup.failed".into(),
                target: String::new(),
                client: peer,
                status: StatusCode::UNPROCESSABLE_ENTITY.as_u16(),
            })
            .await;
    }
    if let Err(e) = password::check_new(&form.password, &form.confirm) {
        errors.password = Some(e.to_string());
    }
    if form.lan_interface.is_empty()
        || (!state.config().interfaces.is_empty()
            && !state.config().interfaces.contains(&form.lan_interface))
    {
        errors.lan = Some("Choose the network port that faces the machines.".into());
    }
    let mode = parse_mode(&form.dhcp_mode);
    if mode.is_none() {
        errors.mode = Some("Choose a DHCP mode.".into());
    }
    if let (Some(mode), None) = (mode, &errors.lan) {
        // The settings setup saves, checked like any others.
        let mut next = state.settings();
        next.lan_interface = form.lan_interface.clone();
        next.dhcp_mode = mode;
        for e in state.check_settings(next.clone()).await? {
            match e.field {
                "lan_interface" => errors.lan = Some(e.message),
                "dhcp_ranges" => {
                    errors.mode = Some(
                        "Router mode needs address ranges, and the config file has none (or none \
                         in this port's subnet): choose proxy mode now, and set the ranges and \
                         router mode in Settings."
                            .into(),
                    );
                }
                _ => errors.mode = Some(e.message),
            }
        }
        // Router mode beside another full DHCP server (the watcher has heard it): asked, as
        // the settings page asks.
        if errors.mode.is_none()
            && form.confirm_router != "yes"
            && let Some(message) = state.router_conflict(&next)
        {
            errors.mode = Some(message);
            errors.confirm_router = true;
        }
    }
    let (Some(mode), None, None, None, None) = (
        mode,
        &errors.code,
        &errors.password,
        &errors.lan,
        &errors.mode,
    ) else {
        return form_again(&state, &form, &errors, StatusCode::UNPROCESSABLE_ENTITY);
    };

    let hash = state
        .hash({
            let pw = form.password.clone();
            move || password::hash(&pw)
        })
        .await?
        .map_err(|e| WebError::Task(e.to_string()))?;
    let user = UserRecord {
        name: ADMIN.into(),
        password_hash: hash,
        created: SystemTime::now(),
    };
    let created = state.db(move |s| s.create_first_user(&user)).await?;
    if !created {
        state.finish_setup();
        return Ok(done());
    }
    let mut settings = state.settings();
    settings.lan_interface = form.lan_interface.clone();
    settings.dhcp_mode = mode;
    state.save_settings(settings).await?;
    state.finish_setup();
    tracing::info!(?peer, lan = %escape_for_log(&form.lan_interface), mode = mode.as_str(), "first-run setup done");

    let id = state.create_session(ADMIN).await?;
    state
        .audit(AuditRecord {
            at: state.clock().wall(),
            actor: Some(ADMIN.into()),
            action: "setup".into(),
            target: form.lan_interface.clone(),
            client: peer,
            status: StatusCode::SEE_OTHER.as_u16(),
        })
        .await;
    let mut response = Redirect::to("/").into_response();
    let value =
        HeaderValue::from_str(&session_cookie(&id)).map_err(|e| WebError::Task(e.to_string()))?;
    response.headers_mut().append(header::SET_COOKIE, value);
    Ok(response)
}
