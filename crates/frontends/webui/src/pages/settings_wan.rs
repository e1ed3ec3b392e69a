//! The settings page's WAN and DNS sections: the upstream port (DHCP or a static address,
//! gateway and name servers) and the LAN's DNS forwarder (on, off or with router mode; where it
//! forwards). Saved like the page's other settings: checked with the config file's rules
//! (`[wan]`, `[dns]`), stored, and applied by the daemon without a restart.

use std::net::Ipv4Addr;

use axum::extract::State;
use axum::response::Response;
use axum::{Extension, Form};
use flakeboot_appliance::wire;
use flakeboot_store::{DhcpModeSetting, DnsSettings, WanModeSetting, WanSettings};
use maud::{Markup, html};
use serde::Deserialize;

use crate::auth::guard::Principal;
use crate::error::WebError;
use crate::pages::layout::{csrf_field, field_error};
use crate::pages::settings::{View, failed, saved};
use crate::pages::settings_input::by_field;
use crate::state::WebState;

/// The WAN section.
pub(crate) fn wan_section(state: &WebState, csrf: &str, view: &View) -> Markup {
    let s = state.settings();
    let wan = wire::Wan::from(s.wan.clone().unwrap_or_default());
    let draft = |k: &'static str, default: String| view.drafts.get(k).cloned().unwrap_or(default);
    let err = |k: &'static str| view.errors.get(k).map(String::as_str);
    let interface = draft("wan.interface", wan.interface.clone().unwrap_or_default());
    let mode = view
        .drafts
        .get("wan.mode")
        .map(String::as_str)
        .unwrap_or(match wan.mode {
            wire::WanMode::Dhcp => "dhcp",
            wire::WanMode::Static => "static",
        })
        .to_owned();
    let interfaces = &state.config().interfaces;
    let dns_text = join(&wan.dns);
    html! {
        div.card #wan {
            h2 { "WAN" }
            p.small.muted {
                "The upstream port (to your internet router or modem). In router mode the LAN is forwarded to it with NAT. \
                 In every mode it is firewalled: nothing answers there but the WireGuard port of remote access."
            }
            @if s.dhcp_mode != DhcpModeSetting::Router {
                div.notice.info.small { "Not in router mode now: the LAN is not forwarded to the WAN; the port is only firewalled." }
            }
            form.stack method="post" action="/settings/wan" {
                (csrf_field(csrf))
                div {
                    label for="wan_interface" { "WAN port" span.hint { "Another port than the LAN's." } }
                    @if interfaces.is_empty() {
                        input #wan_interface type="text" name="wan_interface" placeholder="none" value=(interface);
                    } @else {
                        select #wan_interface name="wan_interface" {
                            option value="" selected[interface.is_empty()] { "No WAN port" }
                            @for i in interfaces { option value=(i) selected[*i == interface] { (i) } }
                            @if !interface.is_empty() && !interfaces.contains(&interface) {
                                option value=(interface) selected { (interface) " (not on this machine)" }
                            }
                        }
                    }
                    (field_error(err("wan.interface")))
                }
                fieldset.plain {
                    legend { "How it gets its address" }
                    div.choices {
                        label.choice {
                            input type="radio" name="wan_mode" value="dhcp" checked[mode != "static"];
                            span { strong { "By DHCP" } span.muted.small { "From your internet router or provider." } }
                        }
                        label.choice {
                            input type="radio" name="wan_mode" value="static" checked[mode == "static"];
                            span { strong { "Static" } span.muted.small { "The address, gateway and name servers below; flakeboot sets them on the port." } }
                        }
                    }
                    (field_error(err("wan.mode")))
                }
                div.row {
                    div {
                        label for="wan_address" { "Address" span.hint { "Static only (not saved with DHCP): with its prefix, like 203.0.113.2/24." } }
                        input #wan_address type="text" name="wan_address" inputmode="decimal" placeholder="203.0.113.2/24"
                            value=(draft("wan.address", wan.address.clone().unwrap_or_default()));
                        (field_error(err("wan.address")))
                    }
                    div {
                        label for="wan_gateway" { "Gateway" span.hint { "Static only: inside the address's subnet." } }
                        input #wan_gateway type="text" name="wan_gateway" inputmode="decimal" placeholder="203.0.113.1"
                            value=(draft("wan.gateway", wan.gateway.map(|g| g.to_string()).unwrap_or_default()));
                        (field_error(err("wan.gateway")))
                    }
                }
                div {
                    label for="wan_dns" { "Name servers" span.hint { "Static only: one address per line; the DNS forwarder asks them unless DNS below names others." } }
                    textarea #wan_dns name="wan_dns" rows="2" placeholder="203.0.113.53" { (draft("wan.dns", dns_text)) }
                    (field_error(err("wan.dns")))
                }
                div.actions { button type="submit" { "Save WAN" } }
            }
        }
    }
}

/// The DNS section.
pub(crate) fn dns_section(state: &WebState, csrf: &str, view: &View) -> Markup {
    let s = state.settings();
    let dns = s.dns.clone().unwrap_or_default();
    let draft = |k: &'static str, default: String| view.drafts.get(k).cloned().unwrap_or(default);
    let err = |k: &'static str| view.errors.get(k).map(String::as_str);
    let enabled = draft("dns.enabled", enabled_value(dns.enabled).to_owned());
    let on_now = dns
        .enabled
        .unwrap_or(s.dhcp_mode == DhcpModeSetting::Router);
    html! {
        div.card #dns {
            h2 { "DNS" }
            p.small.muted {
                "A caching DNS forwarder on the LAN address: it answers the machines' own names (from their leases and settings) \
                 and forwards every other name upstream. In router mode DHCP hands it out as the LAN's DNS server."
            }
            p.small { "With these settings it is " strong { @if on_now { "on" } @else { "off" } } "." }
            form.stack method="post" action="/settings/dns" {
                (csrf_field(csrf))
                div.row {
                    div {
                        label for="dns_enabled" { "Forwarder" }
                        select #dns_enabled name="dns_enabled" {
                            option value="auto" selected[enabled == "auto"] { "In router mode only" }
                            option value="on" selected[enabled == "on"] { "On" }
                            option value="off" selected[enabled == "off"] { "Off" }
                        }
                        (field_error(err("dns.enabled")))
                    }
                    div {
                        label for="dns_upstream" { "Upstream name servers"
                            span.hint { "One address per line. Empty: the static WAN's name servers, else the appliance's own (/etc/resolv.conf, e.g. from the WAN's DHCP)." } }
                        textarea #dns_upstream name="dns_upstream" rows="2" placeholder="9.9.9.9" { (draft("dns.upstream", join(&dns.upstream))) }
                        (field_error(err("dns.upstream")))
                    }
                }
                div.actions { button type="submit" { "Save DNS" } }
            }
        }
    }
}

fn join(addresses: &[Ipv4Addr]) -> String {
    addresses
        .iter()
        .map(Ipv4Addr::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

fn enabled_value(enabled: Option<bool>) -> &'static str {
    match enabled {
        None => "auto",
        Some(true) => "on",
        Some(false) => "off",
    }
}

/// IPv4 addresses, one per line (or separated by spaces or commas).
pub fn parse_addresses(text: &str) -> Result<Vec<Ipv4Addr>, String> {
    text.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|a| !a.is_empty())
        .map(|a| {
            a.parse()
                .map_err(|_| format!("“{a}” is not an IPv4 address like 203.0.113.53"))
        })
        .collect()
}

/// The WAN form.
#[derive(Debug, Default, Deserialize)]
pub struct WanForm {
    #[serde(default)]
    wan_interface: String,
    #[serde(default)]
    wan_mode: String,
    #[serde(default)]
    wan_address: String,
    #[serde(default)]
    wan_gateway: String,
    #[serde(default)]
    wan_dns: String,
}

/// POST /settings/wan
pub async fn wan(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
    Form(form): Form<WanForm>,
) -> Result<Response, WebError> {
    let mut view = View::default();
    let mut next = state.settings();
    let mut wan = WanSettings {
        interface: Some(form.wan_interface.trim().to_owned()).filter(|i| !i.is_empty()),
        ..WanSettings::default()
    };
    match form.wan_mode.as_str() {
        "dhcp" | "" => wan.mode = WanModeSetting::Dhcp,
        "static" => wan.mode = WanModeSetting::Static,
        _ => {
            view.errors
                .insert("wan.mode", "Choose DHCP or static.".into());
        }
    }
    // The static fields count with "Static" chosen only (their hints say so): a switch to DHCP
    // needs no clearing them first. The API, explicit, refuses them with DHCP as the file does.
    let fixed = wan.mode == WanModeSetting::Static;
    // The address's form is the wire's rule (`a.b.c.d/n`), the API's too.
    let address = wire::Wan {
        address: Some(form.wan_address.clone()),
        ..wire::Wan::default()
    };
    match address.into_store() {
        Ok(w) if fixed => wan.address = w.address,
        Ok(_) => {}
        Err(e) if fixed => {
            view.errors.insert(e.field, e.message);
        }
        Err(_) => {}
    }
    let gateway = form.wan_gateway.trim();
    if fixed && !gateway.is_empty() {
        match gateway.parse() {
            Ok(g) => wan.gateway = Some(g),
            Err(_) => {
                view.errors.insert(
                    "wan.gateway",
                    format!("“{gateway}” is not an IPv4 address like 203.0.113.1"),
                );
            }
        }
    }
    match parse_addresses(&form.wan_dns) {
        Ok(d) if fixed => wan.dns = d,
        Ok(_) => {}
        Err(e) if fixed => {
            view.errors.insert("wan.dns", e);
        }
        Err(_) => {}
    }
    next.wan = Some(wan);
    if view.errors.is_empty() {
        view.errors = by_field(state.check_settings(next.clone()).await?);
    }
    if !view.errors.is_empty() {
        view.drafts.insert("wan.interface", form.wan_interface);
        view.drafts.insert("wan.mode", form.wan_mode);
        view.drafts.insert("wan.address", form.wan_address);
        view.drafts.insert("wan.gateway", form.wan_gateway);
        view.drafts.insert("wan.dns", form.wan_dns);
        return failed(&state, &principal, view).await;
    }
    state.save_settings(next).await?;
    Ok(saved("wan"))
}

/// The DNS form.
#[derive(Debug, Default, Deserialize)]
pub struct DnsForm {
    #[serde(default)]
    dns_enabled: String,
    #[serde(default)]
    dns_upstream: String,
}

/// POST /settings/dns
pub async fn dns(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
    Form(form): Form<DnsForm>,
) -> Result<Response, WebError> {
    let mut view = View::default();
    let mut next = state.settings();
    let mut dns = DnsSettings::default();
    match form.dns_enabled.as_str() {
        "auto" | "" => dns.enabled = None,
        "on" => dns.enabled = Some(true),
        "off" => dns.enabled = Some(false),
        _ => {
            view.errors.insert(
                "dns.enabled",
                "Choose on, off or in router mode only.".into(),
            );
        }
    }
    match parse_addresses(&form.dns_upstream) {
        Ok(u) => dns.upstream = u,
        Err(e) => {
            view.errors.insert("dns.upstream", e);
        }
    }
    next.dns = Some(dns);
    if view.errors.is_empty() {
        view.errors = by_field(state.check_settings(next.clone()).await?);
    }
    if !view.errors.is_empty() {
        view.drafts.insert("dns.enabled", form.dns_enabled);
        view.drafts.insert("dns.upstream", form.dns_upstream);
        return failed(&state, &principal, view).await;
    }
    state.save_settings(next).await?;
    Ok(saved("dns"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_one_a_line_or_say_which_is_wrong() {
        assert_eq!(
            parse_addresses(" 9.9.9.9\n\n1.1.1.1, 8.8.8.8 ").unwrap(),
            [
                Ipv4Addr::new(9, 9, 9, 9),
                Ipv4Addr::new(1, 1, 1, 1),
                Ipv4Addr::new(8, 8, 8, 8)
            ]
        );
        assert!(parse_addresses("").unwrap().is_empty());
        assert!(
            parse_addresses("9.9.9.9\ndns.example")
                .unwrap_err()
                .contains("“dns.example”")
        );
    }
}
