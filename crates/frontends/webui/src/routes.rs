//! The route table: every route, its method and who may call it, in one place. [`app`] builds
//! the router from it, and a test walks it to prove every protected route refuses anonymous
//! requests.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post, put};

use crate::api;
use crate::audit;
use crate::auth::guard::require_auth;
use crate::error::WebError;
use crate::pages::{
    access_tokens, account, audit_log, build, dashboard, firmware, flake_follow, flake_remove,
    flakes, generations, hosts, layout, login, machine_actions, machines, settings, settings_wan,
    setup, setup_restore, vpn, vpn_peers,
};
use crate::state::WebState;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: sign-in, first-run setup, static assets.
    Public,
    /// A session or an API token.
    Protected,
}

/// One entry of the route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteInfo {
    /// The HTTP method.
    pub method: &'static str,
    /// The path, axum syntax (`/machines/{mac}`).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
}

type Entry = (RouteInfo, MethodRouter<WebState>);

fn r(
    method: &'static str,
    path: &'static str,
    access: Access,
    handler: MethodRouter<WebState>,
) -> Entry {
    (
        RouteInfo {
            method,
            path,
            access,
        },
        handler,
    )
}

/// Every route with its handler.
fn table() -> Vec<Entry> {
    use Access::{Protected as P, Public as O};
    vec![
        r("GET", "/static/style.css", O, get(style)),
        r("GET", "/static/live.js", O, get(script)),
        r("GET", "/static/upload.js", O, get(upload_script)),
        r("GET", "/static/firmware.js", O, get(firmware_script)),
        r("GET", "/static/restore.js", O, get(restore_script)),
        r("GET", "/setup", O, get(setup::show)),
        r("POST", "/setup", O, post(setup::submit)),
        r("POST", "/setup/restore", O, post(setup_restore::submit)),
        r("GET", "/login", O, get(login::show)),
        r("POST", "/login", O, post(login::submit)),
        r("POST", "/logout", P, post(login::logout)),
        r("GET", "/", P, get(dashboard::show)),
        r("GET", "/machines", P, get(machines::list)),
        r("GET", "/hosts", P, get(hosts::list)),
        r("GET", "/machines/{mac}", P, get(machines::show)),
        r("POST", "/machines/{mac}", P, post(machines::update)),
        r(
            "POST",
            "/machines/{mac}/forget",
            P,
            post(machine_actions::forget),
        ),
        r(
            "POST",
            "/machines/{mac}/wake",
            P,
            post(machine_actions::wake),
        ),
        r(
            "POST",
            "/leases/{mac}/release",
            P,
            post(machine_actions::release),
        ),
        r("GET", "/flakes", P, get(flakes::list)),
        r("POST", "/flakes", P, post(flakes::add)),
        r("GET", "/flakes/{name}", P, get(flakes::show)),
        r("POST", "/access-tokens", P, post(access_tokens::set_token)),
        r(
            "POST",
            "/access-tokens/remove",
            P,
            post(access_tokens::remove_token),
        ),
        r("POST", "/flakes/{name}/update", P, post(flakes::update)),
        r("POST", "/flakes/{name}/build", P, post(flakes::build)),
        r(
            "POST",
            "/flakes/{name}/follow",
            P,
            post(flake_follow::follow),
        ),
        r(
            "POST",
            "/flakes/{name}/hook/rotate",
            P,
            post(flake_follow::rotate),
        ),
        r(
            "GET",
            "/flakes/{name}/remove",
            P,
            get(flake_remove::confirm),
        ),
        r(
            "POST",
            "/flakes/{name}/remove",
            P,
            post(flake_remove::remove),
        ),
        r("GET", "/builds/{id}", P, get(build::build_page)),
        r("POST", "/builds/{id}/cancel", P, post(build::cancel)),
        r(
            "POST",
            "/generations/rollback",
            P,
            post(generations::rollback),
        ),
        r("POST", "/generations/unpin", P, post(flakes::unpin)),
        r("GET", "/settings", P, get(settings::show)),
        r("POST", "/settings/network", P, post(settings::network)),
        r("POST", "/settings/wan", P, post(settings_wan::wan)),
        r("POST", "/settings/dns", P, post(settings_wan::dns)),
        r("POST", "/settings/menu", P, post(settings::menu)),
        r("POST", "/settings/nix", P, post(settings::nix)),
        r(
            "POST",
            "/settings/password",
            P,
            post(account::change_password),
        ),
        r("POST", "/settings/tokens", P, post(account::create_token)),
        r(
            "POST",
            "/settings/tokens/{id}/delete",
            P,
            post(account::delete_token),
        ),
        r(
            "POST",
            "/settings/certificate",
            P,
            post(account::certificate),
        ),
        r("GET", "/audit", P, get(audit_log::show)),
        r("GET", "/vpn", P, get(vpn::show)),
        r("POST", "/vpn/server", P, post(vpn::server)),
        r("POST", "/vpn/hub", P, post(vpn::hub)),
        r("POST", "/vpn/peers", P, post(vpn_peers::add)),
        r("POST", "/vpn/peers/{id}/rename", P, post(vpn_peers::rename)),
        r("POST", "/vpn/peers/{id}/revoke", P, post(vpn_peers::revoke)),
        r("GET", "/api/v1/status", P, get(api::status)),
        r("GET", "/metrics", P, get(api::metrics::metrics)),
        r("GET", "/api/v1/health", P, get(api::health)),
        r("GET", "/api/v1/leases", P, get(api::leases)),
        r("GET", "/api/v1/lan/dhcp-servers", P, get(api::dhcp_servers)),
        r("GET", "/api/v1/deploy-key", P, get(api::deploy_key)),
        r(
            "GET",
            "/api/v1/access-tokens",
            P,
            get(api::access_tokens::list),
        ),
        r(
            "POST",
            "/api/v1/access-tokens",
            P,
            post(api::access_tokens::set),
        ),
        r(
            "DELETE",
            "/api/v1/access-tokens/{host}",
            P,
            delete(api::access_tokens::remove),
        ),
        r(
            "DELETE",
            "/api/v1/leases/{mac}",
            P,
            delete(api::housekeeping::release_lease),
        ),
        r("GET", "/api/v1/flakes", P, get(api::flakes)),
        r("POST", "/api/v1/flakes", P, post(api::add_flake)),
        r(
            "DELETE",
            "/api/v1/flakes/{name}",
            P,
            delete(api::housekeeping::remove_flake),
        ),
        r(
            "POST",
            "/api/v1/flakes/{name}/update",
            P,
            post(api::update_flake),
        ),
        r(
            "POST",
            "/api/v1/flakes/{name}/hook",
            O,
            post(api::follow::hook).layer(DefaultBodyLimit::max(api::follow::HOOK_BODY_MAX)),
        ),
        r(
            "GET",
            "/api/v1/flakes/{name}/hook",
            P,
            get(api::follow::get_hook),
        ),
        r(
            "POST",
            "/api/v1/flakes/{name}/hook/rotate",
            P,
            post(api::follow::rotate_hook),
        ),
        r(
            "GET",
            "/api/v1/flakes/{name}/history",
            P,
            get(api::follow::history),
        ),
        r(
            "PUT",
            "/api/v1/flakes/{name}/follow",
            P,
            put(api::follow::put_follow),
        ),
        r("GET", "/api/v1/hosts", P, get(api::hosts)),
        r("GET", "/api/v1/builds", P, get(api::builds::list)),
        r("POST", "/api/v1/builds", P, post(api::builds::create)),
        r("GET", "/api/v1/builds/{id}", P, get(api::builds::get)),
        r(
            "POST",
            "/api/v1/builds/{id}/cancel",
            P,
            post(api::builds::cancel),
        ),
        r("GET", "/api/v1/builds/{id}/log", P, get(api::builds::log)),
        r(
            "GET",
            "/api/v1/builds/{id}/events",
            P,
            get(api::builds::events),
        ),
        r("GET", "/api/v1/generations", P, get(api::generations)),
        r(
            "POST",
            "/api/v1/generations/rollback",
            P,
            post(api::rollback),
        ),
        r("POST", "/api/v1/generations/unpin", P, post(api::unpin)),
        r(
            "GET",
            "/api/v1/generations/preflight-log",
            P,
            get(api::preflight::log),
        ),
        r("GET", "/api/v1/machines", P, get(api::machines)),
        r("GET", "/api/v1/machines/{mac}", P, get(api::machine)),
        r(
            "POST",
            "/api/v1/machines/{mac}",
            P,
            post(api::update_machine),
        ),
        r(
            "DELETE",
            "/api/v1/machines/{mac}",
            P,
            delete(api::housekeeping::forget_machine),
        ),
        r(
            "POST",
            "/api/v1/machines/{mac}/wake",
            P,
            post(api::housekeeping::wake),
        ),
        r(
            "GET",
            "/api/v1/machines/{mac}/attempts",
            P,
            get(api::machine_attempts),
        ),
        r(
            "GET",
            "/api/v1/machines/{mac}/events",
            P,
            get(api::machine_events),
        ),
        r(
            "GET",
            "/api/v1/machines/{mac}/logs",
            P,
            get(api::machine_logs),
        ),
        r("GET", "/api/v1/events", P, get(api::events)),
        r("GET", "/api/v1/audit", P, get(api::audit)),
        r("GET", "/api/v1/settings", P, get(api::get_settings)),
        r("PUT", "/api/v1/settings", P, put(api::put_settings)),
        r("GET", "/api/v1/vpn", P, get(api::vpn::status)),
        r("PUT", "/api/v1/vpn/server", P, put(api::vpn::put_server)),
        r("PUT", "/api/v1/vpn/hub", P, put(api::vpn::put_hub)),
        r("POST", "/api/v1/vpn/peers", P, post(api::vpn::add_peer)),
        r("GET", "/firmware", P, get(firmware::show)),
        r("POST", "/firmware/reboot", P, post(firmware::reboot)),
        r("GET", "/api/v1/backup", P, get(api::backup::download)),
        r("GET", "/api/v1/firmware", P, get(api::firmware::status)),
        r(
            "POST",
            "/api/v1/firmware",
            P,
            post(api::firmware::upload).layer(DefaultBodyLimit::disable()),
        ),
        r(
            "POST",
            "/api/v1/firmware/reboot",
            P,
            post(api::firmware::reboot),
        ),
        r(
            "PATCH",
            "/api/v1/vpn/peers/{id}",
            P,
            patch(api::vpn::rename_peer),
        ),
        r(
            "DELETE",
            "/api/v1/vpn/peers/{id}",
            P,
            delete(api::vpn::revoke_peer),
        ),
    ]
}

/// Every route: method, path and access (for tests and docs).
pub fn routes() -> Vec<RouteInfo> {
    table().into_iter().map(|(info, _)| info).collect()
}

/// The paths the plain-HTTP boot port redirects to HTTPS (see [`crate::redirect_router`]).
pub fn ui_paths() -> Vec<&'static str> {
    let mut paths: Vec<&'static str> = table()
        .into_iter()
        .filter(|(i, _)| i.method == "GET" && !i.path.starts_with("/api/") && i.path != "/metrics")
        .map(|(i, _)| i.path)
        .collect();
    paths.dedup();
    paths
}

/// The web UI and API. Serve it with `into_make_service_with_connect_info::<SocketAddr>()`
/// (login rate limits are per client address); [`crate::serve_tls`] does.
pub fn app(state: WebState) -> Router {
    let mut public: Router<WebState> = Router::new();
    let mut protected: Router<WebState> = Router::new();
    for (info, handler) in table() {
        match info.access {
            Access::Public => public = public.route(info.path, handler),
            Access::Protected => protected = protected.route(info.path, handler),
        }
    }
    // The guard runs first; the audit log records what gets past it.
    let protected = protected
        .route_layer(middleware::from_fn_with_state(state.clone(), audit::record))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_auth));
    Router::new()
        .merge(public)
        .merge(protected)
        .fallback(not_found)
        .layer(middleware::map_response(security_headers))
        .with_state(state)
}

async fn not_found() -> WebError {
    WebError::NotFound {
        what: "this page".into(),
    }
}

/// Headers on every response: a strict content security policy (only this origin's styles and
/// scripts), no framing, no sniffing, no referrer, HSTS, and no caching of pages.
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name: header::HeaderName, value: &'static str| {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    );
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    set(h, header::CACHE_CONTROL, "no-store");
    response
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        layout::STYLE_CSS,
    )
        .into_response()
}

async fn script() -> Response {
    javascript(layout::LIVE_JS)
}

async fn upload_script() -> Response {
    javascript(layout::UPLOAD_JS)
}

async fn firmware_script() -> Response {
    javascript(layout::FIRMWARE_JS)
}

async fn restore_script() -> Response {
    javascript(layout::RESTORE_JS)
}

fn javascript(source: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        source,
    )
        .into_response()
}

/// The method of a route entry as an `http::Method` (for tests).
pub fn method_of(info: &RouteInfo) -> Method {
    Method::from_bytes(info.method.as_bytes()).unwrap_or(Method::GET)
}
