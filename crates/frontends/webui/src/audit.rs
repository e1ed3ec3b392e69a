//! The audit log of admin actions: who (a user, an API token's name, the owner on the API
//! socket), what, to what, from which address, when, and the answer's status.
//!
//! One place records them: [`record`], a middleware inside the sign-in guard on every
//! protected route, writes an entry for each state-changing request whose route is in
//! [`ACTIONS`] (a test proves every state-changing route is). The target comes from the
//! route's path parameters (a MAC, a flake's name, an id), or from an [`AuditTarget`] a
//! handler puts in its response when the target is in the body (a new flake's name, a
//! token's name). Sign-in and setup are public routes: their handlers call
//! [`WebState::audit`] themselves. Bodies are never read here, so no password, token, key or
//! setting value reaches the log.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use flakeboot_store::AuditRecord;

use crate::auth::guard::{LocalOwner, Principal};
use crate::state::WebState;

/// Every state-changing protected route and its action: (method, route, action).
pub const ACTIONS: &[(&str, &str, &str)] = &[
    ("POST", "/logout", "logout"),
    ("POST", "/machines/{mac}", "machine.update"),
    ("POST", "/machines/{mac}/forget", "machine.forget"),
    ("POST", "/machines/{mac}/wake", "machine.wake"),
    ("POST", "/leases/{mac}/release", "lease.release"),
    ("POST", "/flakes", "flake.add"),
    ("POST", "/access-tokens", "access-token.set"),
    ("POST", "/access-tokens/remove", "access-token.remove"),
    ("POST", "/flakes/{name}/update", "flake.update"),
    ("POST", "/flakes/{name}/build", "flake.build"),
    ("POST", "/flakes/{name}/remove", "flake.remove"),
    ("POST", "/flakes/{name}/follow", "flake.follow"),
    ("POST", "/flakes/{name}/hook/rotate", "flake.hook.rotate"),
    ("POST", "/builds/{id}/cancel", "build.cancel"),
    ("POST", "/generations/rollback", "generation.rollback"),
    ("POST", "/generations/unpin", "generation.unpin"),
    ("POST", "/settings/network", "settings.network"),
    ("POST", "/settings/wan", "settings.wan"),
    ("POST", "/settings/dns", "settings.dns"),
    ("POST", "/settings/menu", "settings.menu"),
    ("POST", "/settings/nix", "settings.nix"),
    ("POST", "/settings/password", "password.change"),
    ("POST", "/settings/tokens", "token.create"),
    ("POST", "/settings/tokens/{id}/delete", "token.delete"),
    ("POST", "/settings/certificate", "certificate.replace"),
    ("POST", "/vpn/server", "vpn.server"),
    ("POST", "/vpn/hub", "vpn.hub"),
    ("POST", "/vpn/peers", "vpn.peer.add"),
    ("POST", "/vpn/peers/{id}/rename", "vpn.peer.rename"),
    ("POST", "/vpn/peers/{id}/revoke", "vpn.peer.revoke"),
    ("DELETE", "/api/v1/leases/{mac}", "lease.release"),
    ("POST", "/api/v1/access-tokens", "access-token.set"),
    (
        "DELETE",
        "/api/v1/access-tokens/{host}",
        "access-token.remove",
    ),
    ("POST", "/api/v1/flakes", "flake.add"),
    ("DELETE", "/api/v1/flakes/{name}", "flake.remove"),
    ("POST", "/api/v1/flakes/{name}/update", "flake.update"),
    ("PUT", "/api/v1/flakes/{name}/follow", "flake.follow"),
    (
        "POST",
        "/api/v1/flakes/{name}/hook/rotate",
        "flake.hook.rotate",
    ),
    ("POST", "/api/v1/builds", "flake.build"),
    ("POST", "/api/v1/builds/{id}/cancel", "build.cancel"),
    (
        "POST",
        "/api/v1/generations/rollback",
        "generation.rollback",
    ),
    ("POST", "/api/v1/generations/unpin", "generation.unpin"),
    ("POST", "/api/v1/machines/{mac}", "machine.update"),
    ("DELETE", "/api/v1/machines/{mac}", "machine.forget"),
    ("POST", "/api/v1/machines/{mac}/wake", "machine.wake"),
    ("PUT", "/api/v1/settings", "settings"),
    ("POST", "/firmware/reboot", "firmware.reboot"),
    ("POST", "/api/v1/firmware", "firmware.upload"),
    ("GET", "/api/v1/backup", "backup.download"),
    ("POST", "/api/v1/firmware/reboot", "firmware.reboot"),
    ("PUT", "/api/v1/vpn/server", "vpn.server"),
    ("PUT", "/api/v1/vpn/hub", "vpn.hub"),
    ("POST", "/api/v1/vpn/peers", "vpn.peer.add"),
    ("PATCH", "/api/v1/vpn/peers/{id}", "vpn.peer.rename"),
    ("DELETE", "/api/v1/vpn/peers/{id}", "vpn.peer.revoke"),
];

/// The reads that are audited: they hand out the appliance's secrets.
pub const AUDITED_READS: &[(&str, &str)] = &[("GET", "/api/v1/backup")];

/// Targets are cut to this many characters.
const MAX_TARGET: usize = 200;

/// The public routes that change state and record their own entries (sign-in, setup, and
/// setup's restore of a backup, whose success goes into the restored store's log).
pub const SELF_RECORDED: &[(&str, &str)] = &[
    ("POST", "/login"),
    ("POST", "/setup"),
    ("POST", "/setup/restore"),
];

/// Public routes that are no admin's action and stay out of the audit log: the forges' push
/// webhook (its handler logs each call with the caller's address and counts it in
/// `flakeboot_webhook_calls_total`; the update it starts is in the flake's update history).
pub const NOT_ADMIN_ACTIONS: &[(&str, &str)] = &[("POST", "/api/v1/flakes/{name}/hook")];

/// The action of a route, if it is audited.
pub fn action_of(method: &str, route: &str) -> Option<&'static str> {
    ACTIONS
        .iter()
        .find(|(m, r, _)| *m == method && *r == route)
        .map(|(_, _, action)| *action)
}

/// What an action was done to, when the path does not say (put it in the response's
/// extensions; see [`noted`]). Only names of things: never a secret.
#[derive(Debug, Clone)]
pub struct AuditTarget(pub String);

/// A response that names the target of its action for the audit log.
pub fn noted(response: impl IntoResponse, target: impl Into<String>) -> Response {
    let mut response = response.into_response();
    response.extensions_mut().insert(AuditTarget(target.into()));
    response
}

/// How an actor is written in the log.
pub fn actor_of(principal: &Principal) -> String {
    match principal {
        Principal::Session { user, .. } => user.clone(),
        Principal::Token { name, .. } => format!("token {name}"),
        Principal::Local => "local".to_owned(),
    }
}

/// The path parameters of `path` as routed by `route` (`/flakes/{name}/build`), decoded and
/// joined with spaces.
fn path_target(route: &str, path: &str) -> String {
    route
        .split('/')
        .zip(path.split('/'))
        .filter(|(r, _)| r.starts_with('{'))
        .map(|(_, p)| percent_decode(p))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `%XX` escapes decoded (invalid ones kept as they are; invalid UTF-8 replaced).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Records every audited request that reached its handler (after the guard), with the
/// answer's status. A failure to write is logged; the answer goes out anyway.
pub async fn record(State(state): State<WebState>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    // Reads are not audited, but for the few listed (a backup: every key of the appliance).
    if matches!(method, Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let Some((route, action)) = route.and_then(|r| action_of(method.as_str(), &r).map(|a| (r, a)))
    else {
        return next.run(req).await;
    };
    let actor = req.extensions().get::<Principal>().map(actor_of);
    let client = if req.extensions().get::<LocalOwner>().is_some() {
        None
    } else {
        req.extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
    };
    let path_target = path_target(&route, req.uri().path());
    let response = next.run(req).await;
    let target = response
        .extensions()
        .get::<AuditTarget>()
        .map_or(path_target, |t| t.0.clone());
    let target: String = target.chars().take(MAX_TARGET).collect();
    state
        .audit(AuditRecord {
            at: state.clock().wall(),
            actor,
            action: action.to_owned(),
            target,
            client,
            status: response.status().as_u16(),
        })
        .await;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_come_from_the_path_parameters_decoded() {
        assert_eq!(
            path_target("/flakes/{name}/build", "/flakes/my%20lab/build"),
            "my lab"
        );
        assert_eq!(
            path_target("/machines/{mac}", "/machines/52:54:00:00:00:01"),
            "52:54:00:00:00:01"
        );
        assert_eq!(path_target("/settings/network", "/settings/network"), "");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }

    #[test]
    fn routes_map_to_actions() {
        assert_eq!(action_of("POST", "/flakes"), Some("flake.add"));
        assert_eq!(
            action_of("DELETE", "/api/v1/machines/{mac}"),
            Some("machine.forget")
        );
        assert_eq!(action_of("GET", "/flakes"), None);
    }
}

#[cfg(test)]
mod route_tests {
    use super::*;

    #[test]
    fn every_state_changing_route_is_audited() {
        for info in crate::routes::routes() {
            if matches!(info.method, "GET" | "HEAD" | "OPTIONS") {
                // Reads are not audited, but for what hands out the appliance's secrets.
                let audited_read = AUDITED_READS.contains(&(info.method, info.path));
                assert_eq!(
                    action_of(info.method, info.path).is_some(),
                    audited_read,
                    "{info:?}"
                );
                continue;
            }
            let self_recorded = SELF_RECORDED.contains(&(info.method, info.path))
                || NOT_ADMIN_ACTIONS.contains(&(info.method, info.path));
            assert!(
                action_of(info.method, info.path).is_some() || self_recorded,
                "{} {} changes state and is not in audit::ACTIONS",
                info.method,
                info.path
            );
        }
        // And the table names no route that does not exist.
        let routes = crate::routes::routes();
        for (method, route, _) in ACTIONS {
            assert!(
                routes
                    .iter()
                    .any(|i| i.method == *method && i.path == *route),
                "{method} {route} is no route"
            );
        }
    }
}
