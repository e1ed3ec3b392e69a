//! The Firmware page: both A/B slots (version, boot entry, which runs), the last update's
//! result, a signed bundle's upload with a progress bar (`/static/firmware.js` posts it to
//! `POST /api/v1/firmware`), the reboot into the new slot and the one into the development mode.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use flakeboot_appliance::firmware::{Firmware, FirmwareStatus};
use maud::{Markup, html};
use serde::Deserialize;

use crate::auth::guard::Principal;
use crate::error::WebError;
use crate::pages::layout::{Frame, Nav, csrf_field, message_page, page};
use crate::state::WebState;

/// The firmware's status off the async threads (it reads the ESP and the UKIs' headers).
pub(crate) async fn status(firmware: &Firmware) -> Result<FirmwareStatus, WebError> {
    let firmware = firmware.clone();
    tokio::task::spawn_blocking(move || firmware.status())
        .await
        .map_err(|e| WebError::Task(e.to_string()))
}

/// GET /firmware
pub async fn show(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, WebError> {
    let fw = status(state.firmware()?).await?;
    let body = html! {
        h1 { "Firmware" }
        @if let Some(dev) = &fw.development { div.notice.warn role="alert" #development { (dev) } }
        @if fw.development_mode { (development_mode_notice(fw.root_fs.as_deref())) }
        @if !fw.image {
            p { "This daemon does not run on the appliance image: it has no A/B slots to update." }
        } @else {
            p.muted {
                "flakeboot " (fw.version.as_deref().unwrap_or("?")) " on "
                (fw.board.as_deref().unwrap_or("?")) ". An update goes into the slot that is not "
                "running; the appliance boots it at the next reboot and goes back to the running "
                "slot by itself if the new one does not come up healthy three times."
            }
            @match fw.secure_boot {
                Some(true) => p #secure-boot { span.badge.ok { "Secure Boot" } " The firmware enforces UEFI Secure Boot: it starts only boot loaders and UKIs signed with an enrolled key." },
                Some(false) => p #secure-boot { span.badge { "Secure Boot off" } " The firmware does not enforce UEFI Secure Boot: enroll the image's certificate (uefi-db.pem) and turn it on in the firmware's setup." },
                None => {},
            }
            div.table-wrap { table #slots {
                thead { tr { th { "Slot" } th { "Version" } th { "Boot entry" } th { "State" } } }
                tbody {
                    @for s in &fw.slots {
                        tr {
                            td { strong { (s.slot) } @if s.running { " " span.badge.ok { "running" } } }
                            @if let Some(e) = &s.entry {
                                td { (e.version.as_deref().unwrap_or("unknown")) }
                                td { code { (e.name) } }
                                td { (e.state) @if let Some(n) = e.tries_left { @if n > 0 { " (" (n) " tries left)" } } }
                            } @else {
                                td.muted colspan="3" { "empty" }
                            }
                        }
                    }
                }
            } }
            @if let Some(last) = &fw.last_update {
                p #last-update {
                    "Last update: "
                    @if last.ok { span.badge.ok { "installed" } } @else { span.badge.bad { "failed" } }
                    " " (last.message)
                }
            }
            h2 { "Install an update" }
            p.muted {
                "A signed update bundle (" code { "flakeboot-<version>-<board>.bundle.tar" }
                ", from image/build.sh). Its signature and board are checked before anything is "
                "written. From a laptop: " code { "flakeboot firmware upload FILE --server URL" } "."
            }
            form #firmware-upload data-csrf=(principal.csrf()) {
                input type="file" name="bundle" accept=".tar" required;
                " "
                button type="submit" { "Upload and install" }
            }
            progress #firmware-progress hidden value="0" max="100" {}
            p #firmware-result role="status" {}
            form #firmware-reboot method="post" action="/firmware/reboot" {
                (csrf_field(principal.csrf()))
                button type="submit" { "Reboot now" }
            }
            h2 { "Development mode" }
            p.muted {
                "For debugging on site: the next boot (only that one) runs this slot with a "
                "writable overlay in memory over its read-only root, and a root shell on the "
                "ninth console (Alt+F9) for someone at the appliance's screen and keyboard. "
                "Whatever is changed there is gone at the next boot. Netboot, the web UI and "
                "the data partition work as usual. From a laptop: "
                code { "flakeboot firmware reboot --development --server URL" } "."
            }
            form #firmware-reboot-development method="post" action="/firmware/reboot" {
                (csrf_field(principal.csrf()))
                input type="hidden" name="development" value="1";
                button type="submit" { "Reboot into development mode" }
            }
            script src="/static/upload.js" {}
            script src="/static/firmware.js" {}
        }
    };
    Ok(page(
        Frame {
            title: "Firmware",
            nav: Nav::Settings,
            csrf: principal.csrf(),
        },
        body,
    )
    .into_response())
}

/// The notice on the dashboard and this page while the development mode runs (`root_fs`: the
/// root file system's type).
pub(crate) fn development_mode_notice(root_fs: Option<&str>) -> Markup {
    html! {
        div.notice.warn role="alert" #development-mode {
            strong { "Development mode." }
            " The root file system is a writable overlay in memory ("
            (root_fs.unwrap_or("unknown"))
            "): changes to it are discarded at the next boot, which is a normal one. "
            a href="/firmware" { "Firmware" }
        }
    }
}

/// The reboot form: `development` (any value) asks for the development mode.
#[derive(Debug, Deserialize)]
pub struct RebootForm {
    #[serde(default)]
    development: Option<String>,
}

/// POST /firmware/reboot
pub async fn reboot(
    State(state): State<WebState>,
    Form(form): Form<RebootForm>,
) -> Result<Response, WebError> {
    let development = form.development.is_some();
    state.firmware()?.reboot(development)?;
    let text = match development {
        true => {
            "The appliance is rebooting into the development mode. This page works again when \
             it is back (about a minute); the dashboard then says so."
        }
        false => {
            "The appliance is rebooting. This page works again when it is back (about a minute)."
        }
    };
    Ok(crate::api::firmware::reboot_noted(
        message_page("Rebooting", text),
        development,
    ))
}
