//! Access tokens for private GitHub/GitLab flakes on the flakes page: the hosts that have one
//! (never a token), a form to set or replace one, and a remove button for those set here
//! (the config file's are changed in the file).

use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use crate::audit::noted;
use crate::auth::escape_for_log;
use crate::error::WebError;
use crate::pages::layout::csrf_field;
use crate::state::WebState;
use flakeboot_appliance::wire::{AccessToken, AccessTokenSource};

/// The set-a-token form (the token never comes back in a page).
#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    host: String,
    #[serde(default)]
    token: String,
}

impl std::fmt::Debug for TokenForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenForm")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// The remove form.
#[derive(Debug, Deserialize)]
pub struct RemoveForm {
    host: String,
}

/// The card, from the listing (or why there is none).
pub(crate) fn card(tokens: Result<Vec<AccessToken>, WebError>, csrf: &str) -> Markup {
    html! {
        div.card #access-tokens {
            h2 { "Access tokens" }
            p.small { "For private github:, gitlab: and https:// flakes: nix sends the token to that host. \
                       A token is never shown again once saved." }
            @match tokens {
                Err(e) => { div.notice.bad { (e) } }
                Ok(tokens) => {
                    @if tokens.is_empty() {
                        p.empty { "No access token yet." }
                    } @else {
                        div.table-wrap {
                            table.responsive {
                                thead { tr { th { "Host" } th { "Set in" } th {} } }
                                tbody {
                                    @for t in &tokens {
                                        tr {
                                            td data-label="Host" { code { (t.host) } }
                                            @match t.source {
                                                AccessTokenSource::Appliance => {
                                                    td data-label="Set in" { "this appliance" }
                                                    td.right {
                                                        form.inline method="post" action="/access-tokens/remove" {
                                                            (csrf_field(csrf))
                                                            input type="hidden" name="host" value=(t.host);
                                                            button.small.secondary type="submit" { "Remove" }
                                                        }
                                                    }
                                                }
                                                AccessTokenSource::ConfigFile => {
                                                    td data-label="Set in" { "the config file" }
                                                    td {}
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    form.stack method="post" action="/access-tokens" {
                        (csrf_field(csrf))
                        div {
                            label for="token-host" { "Host" span.hint { "github.com, gitlab.com or your forge's host." } }
                            input #token-host type="text" name="host" placeholder="github.com"
                                autocomplete="off" spellcheck="false" required;
                        }
                        div {
                            label for="token-value" { "Token" span.hint { "A read-only token (GitLab: PAT:glpat-…). Saving replaces the host's token." } }
                            input #token-value type="password" name="token" autocomplete="off" required;
                        }
                        div.actions { button type="submit" { "Save token" } }
                    }
                }
            }
        }
    }
}

/// POST /access-tokens: set or replace a host's token.
pub async fn set_token(
    State(state): State<WebState>,
    Form(form): Form<TokenForm>,
) -> Result<Response, WebError> {
    let host = form.host.trim().to_owned();
    let target = host.clone();
    state
        .access_tokens(move |t| t.set(&host, form.token.trim()))
        .await?;
    tracing::info!(host = %escape_for_log(&target), "access token set from the UI");
    Ok(noted(Redirect::to("/flakes#access-tokens"), target))
}

/// POST /access-tokens/remove
pub async fn remove_token(
    State(state): State<WebState>,
    Form(form): Form<RemoveForm>,
) -> Result<Response, WebError> {
    let target = form.host.clone();
    state.access_tokens(move |t| t.remove(&form.host)).await?;
    tracing::info!(host = %escape_for_log(&target), "access token removed from the UI");
    Ok(noted(Redirect::to("/flakes#access-tokens"), target).into_response())
}
