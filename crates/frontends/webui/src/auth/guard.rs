//! The middleware in front of every protected route: a session cookie or an API bearer token,
//! and a CSRF token on every state-changing request made with a session.
//!
//! Bearer tokens are for `/api/v1` (and `/metrics`) only: on a page or form route an `Authorization` header is
//! ignored, so only a session (with its CSRF token) gets in there. On the API a token is
//! refused once expired, and a read-only token may only `GET` and `HEAD`.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use flakeboot_store::TokenScope;

use crate::auth::secret::{constant_time_eq, sha256_hex};
use crate::error::{ApiError, WebError};
use crate::state::WebState;

/// The session cookie. `__Host-` makes browsers insist on Secure, Path=/ and no Domain.
pub const SESSION_COOKIE: &str = "__Host-flakeboot";

/// The header that carries the CSRF token on script (fetch) requests made with a session.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "csrf";

/// Largest form body read to find the CSRF token (certificate uploads are the biggest).
const MAX_FORM: usize = 256 * 1024;
/// A refused request's body is read (and dropped) up to this much, for at most
/// [`DRAIN_TIME`], before the answer goes out: an HTTP/2 client still sending its body when the
/// answer ends the stream sees a reset stream instead of the answer (curl: "Stream error in
/// the HTTP/2 framing layer"). Bounded: a stranger's large body is not read to its end.
const DRAIN_MAX: u64 = 1 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Who made a request (inserted into the request's extensions by [`require_auth`]).
#[derive(Debug, Clone)]
pub enum Principal {
    /// A browser session.
    Session {
        /// The user.
        user: String,
        /// The session's CSRF token (pages put it in their forms).
        csrf: String,
        /// The cookie value (to log out or keep on password change).
        cookie: String,
    },
    /// An API token (on `/api/v1` only).
    Token {
        /// Its id.
        id: u64,
        /// Its name (for the audit log).
        name: String,
        /// What it may do.
        scope: TokenScope,
    },
    /// The owner of the state directory, over the owner-only API socket in it (the CLI on the
    /// appliance): the socket's file permissions are the authentication.
    Local,
}

/// Marks a request that came over the owner-only API socket (inserted by
/// [`crate::serve::serve_api_socket`]; extensions cannot be set from the network).
#[derive(Debug, Clone, Copy)]
pub struct LocalOwner;

impl Principal {
    /// The CSRF token to put in forms (empty for tokens, which never render forms).
    pub fn csrf(&self) -> &str {
        match self {
            Principal::Session { csrf, .. } => csrf,
            Principal::Token { .. } | Principal::Local => "",
        }
    }
}

/// The value of a cookie in a request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The `Set-Cookie` value of a new session.
pub fn session_cookie(id: &str) -> String {
    format!("{SESSION_COOKIE}={id}; Path=/; Secure; HttpOnly; SameSite=Strict")
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_session_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Finds who makes the request: on the API a bearer token first, then the session cookie;
/// elsewhere the session cookie only.
async fn authenticate(
    state: &WebState,
    headers: &HeaderMap,
    api: bool,
) -> Result<Option<Principal>, WebError> {
    if let Some(auth) = headers.get(header::AUTHORIZATION).filter(|_| api) {
        let Some(token) = auth
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
        else {
            return Ok(None);
        };
        let digest = sha256_hex(token);
        let tokens = state.db(|s| s.api_tokens()).await?;
        let Some(found) = tokens
            .iter()
            .find(|t| constant_time_eq(&t.token_sha256, &digest))
        else {
            return Ok(None);
        };
        if found.expired(state.clock().wall()) {
            tracing::debug!(id = found.id, "refused an expired API token");
            return Ok(None);
        }
        return Ok(Some(Principal::Token {
            id: found.id,
            name: found.name.clone(),
            scope: found.scope,
        }));
    }
    let Some(id) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    Ok(state.session(id).await?.map(|s| Principal::Session {
        user: s.user,
        csrf: s.csrf,
        cookie: id.to_owned(),
    }))
}

/// The API, and `/metrics` (scraped with a token like the API, read-only scope enough).
fn is_api(req: &Request) -> bool {
    let path = req.uri().path();
    path.starts_with("/api/") || path == "/metrics"
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Reads `body` to its end, or `max` bytes, or for `within`, whichever comes first, and drops
/// it (see [`DRAIN_MAX`]).
pub(crate) async fn drain(body: Body, max: u64, within: std::time::Duration) {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let _ = tokio::time::timeout(within, async {
        let mut got: u64 = 0;
        while let Some(Ok(chunk)) = stream.next().await {
            got += chunk.len() as u64;
            if got > max {
                break;
            }
        }
    })
    .await;
}

/// Refuses anonymous requests (pages: redirect to login or setup; API: 401) and
/// state-changing session requests without the session's CSRF token (403).
pub async fn require_auth(State(state): State<WebState>, req: Request, next: Next) -> Response {
    let api = is_api(&req);
    // The answer to a refused request, once its body is drained.
    let refuse = |e: WebError, body: Body| async move {
        drain(body, DRAIN_MAX, DRAIN_TIME).await;
        if api {
            ApiError(e).into_response()
        } else {
            e.into_response()
        }
    };
    if req.extensions().get::<LocalOwner>().is_some() {
        // The API only: pages are for browsers, which never reach the socket.
        if !api {
            let what = "this page (the API socket serves /api/v1 only)".into();
            return refuse(WebError::NotFound { what }, req.into_body()).await;
        }
        let mut req = req;
        req.extensions_mut().insert(Principal::Local);
        return next.run(req).await;
    }
    if !state.setup_done() {
        return if api {
            refuse(WebError::Unauthorized, req.into_body()).await
        } else {
            Redirect::to("/setup").into_response()
        };
    }
    let principal = match authenticate(&state, req.headers(), api).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return if api || changes_state(req.method()) {
                refuse(WebError::Unauthorized, req.into_body()).await
            } else {
                Redirect::to("/login").into_response()
            };
        }
        Err(e) => return refuse(e, req.into_body()).await,
    };
    if let Principal::Token {
        id,
        scope: TokenScope::ReadOnly,
        ..
    } = &principal
        && !matches!(*req.method(), Method::GET | Method::HEAD)
    {
        tracing::debug!(id, method = %req.method(), "refused a write with a read-only API token");
        let message = "this API token is read-only".into();
        return refuse(WebError::Forbidden { message }, req.into_body()).await;
    }
    let mut req = req;
    if let Principal::Session { csrf, .. } = &principal
        && changes_state(req.method())
    {
        match check_csrf(req, csrf).await {
            Ok(checked) => req = checked,
            Err((e, rest)) => {
                tracing::debug!("refused a request without a valid CSRF token");
                return refuse(e, rest).await;
            }
        }
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// Checks the CSRF token of a session request (header, else the form field) and gives the
/// request back with its body intact; a refusal gives back what is left of the body.
async fn check_csrf(req: Request, expected: &str) -> Result<Request, (WebError, Body)> {
    if let Some(v) = req.headers().get(CSRF_HEADER) {
        return if v.to_str().is_ok_and(|v| constant_time_eq(v, expected)) {
            Ok(req)
        } else {
            Err((WebError::BadCsrf, req.into_body()))
        };
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err((WebError::BadCsrf, req.into_body()));
    }
    let (parts, body) = req.into_parts();
    // A form too large went into the attempt to read it: the rest of it is not drained.
    let bytes = to_bytes(body, MAX_FORM).await.map_err(|_| {
        let message = "the form is too large".into();
        (WebError::BadRequest { message }, Body::empty())
    })?;
    let fields: Vec<(String, String)> =
        serde_urlencoded::from_bytes(&bytes).map_err(|_| (WebError::BadCsrf, Body::empty()))?;
    let ok = fields
        .iter()
        .any(|(k, v)| k == CSRF_FIELD && constant_time_eq(v, expected));
    if !ok {
        return Err((WebError::BadCsrf, Body::empty()));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others_and_set_securely() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; __Host-flakeboot=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "c"), None);
        let set = session_cookie("abc");
        for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(set.contains(attr), "{set}");
        }
    }
}
