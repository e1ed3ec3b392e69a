//! Pieces of the one-time device config page: the QR code (inline SVG, made here), the download
//! link (a `data:` URL, so the config never has to be kept on the appliance to be fetched later),
//! the file name, and byte counts in human units.

use base64::Engine;
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

/// The QR code of `text` as an inline `<svg>` element (no XML prolog, no inline style: colours
/// are SVG attributes, the size comes from the stylesheet's `.qr svg`). `None` when the text is
/// too long for a QR code.
pub fn qr_svg(text: &str) -> Option<String> {
    // Level L keeps the modules large enough to scan from a phone held to a laptop screen; a
    // screen does not get dirty the way printed codes do.
    let code = match QrCode::with_error_correction_level(text.as_bytes(), EcLevel::L) {
        Ok(code) => code,
        Err(e) => {
            tracing::warn!("no QR code for a device config: {e}");
            return None;
        }
    };
    let svg = code
        .render::<svg::Color<'_>>()
        .quiet_zone(true)
        .module_dimensions(4, 4)
        .dark_color(svg::Color("#000"))
        .light_color(svg::Color("#fff"))
        .build();
    let start = svg.find("<svg")?;
    let element = svg.get(start..)?;
    Some(element.replacen(
        "<svg ",
        "<svg role=\"img\" aria-label=\"QR code of the device's WireGuard config\" ",
        1,
    ))
}

/// A `data:` URL holding `text`, for a link with a `download` attribute.
pub fn data_url(text: &str) -> String {
    format!(
        "data:application/octet-stream;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(text)
    )
}

/// The file name of a device's config: `fb-<name>.conf`, the stem at most 15 characters of
/// `[A-Za-z0-9_=+.-]`, because `wg-quick` and the WireGuard apps name the interface after the
/// file and refuse longer or other names. Falls back to `fb-<id>` for names with nothing usable.
pub fn config_file_name(name: &str, id: u64) -> String {
    const MAX_STEM: usize = 15;
    let mut stem = String::from("fb-");
    let mut last_dash = true;
    for c in name.chars() {
        if stem.len() >= MAX_STEM {
            break;
        }
        let keep = c.is_ascii_alphanumeric() || matches!(c, '_' | '=' | '+' | '.');
        if keep {
            stem.push(c);
            last_dash = false;
        } else if !last_dash {
            stem.push('-');
            last_dash = true;
        }
    }
    while stem.len() > 3 && stem.ends_with('-') {
        stem.pop();
    }
    if stem.len() == 3 {
        stem.push_str(&id.to_string());
        stem.truncate(MAX_STEM);
    }
    format!("{stem}.conf")
}

/// A byte count in human units: `0 B`, `512 B`, `1.5 KiB`, `23 MiB`, `4.0 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    // Precision does not matter past three significant digits.
    #[allow(clippy::cast_precision_loss)]
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let name = UNITS.get(unit).copied().unwrap_or("PiB");
    if value < 10.0 {
        format!("{value:.1} {name}")
    } else {
        format!("{value:.0} {name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n\
        Address = 10.77.0.2/32\n\n[Peer]\nPublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\n\
        Endpoint = office.example.net:51820\nAllowedIPs = 10.77.0.1/32\nPersistentKeepalive = 25\n";

    #[test]
    fn the_qr_code_is_an_inline_svg_without_style_or_prolog() {
        let svg = qr_svg(CONFIG).unwrap();
        assert!(svg.starts_with("<svg role=\"img\""), "{svg}");
        assert!(svg.ends_with("</svg>"));
        assert!(svg.contains("viewBox=") && svg.contains("fill=\"#000\""));
        assert!(!svg.contains("style") && !svg.contains("<?xml"));
        // A realistic config fits a version-10 code (57 modules + 2 x 4 quiet, 4 units each):
        // modules big enough to scan from a phone screen.
        assert!(svg.contains("viewBox=\"0 0 260 260\""), "{}", &svg[..200]);
    }

    #[test]
    fn text_too_long_for_a_qr_code_gives_none() {
        assert!(qr_svg(&"x".repeat(8000)).is_none());
    }

    #[test]
    fn the_download_is_the_config_itself() {
        let url = data_url(CONFIG);
        let b64 = url
            .strip_prefix("data:application/octet-stream;base64,")
            .unwrap();
        let back = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(back, CONFIG.as_bytes());
    }

    #[test]
    fn file_names_are_valid_wireguard_interface_names() {
        assert_eq!(config_file_name("laptop", 1), "fb-laptop.conf");
        assert_eq!(config_file_name("Bob's phone", 2), "fb-Bob-s-phone.conf");
        assert_eq!(
            config_file_name("a very long device name", 3),
            "fb-a-very-long.conf"
        );
        assert_eq!(config_file_name("  ✓ ", 42), "fb-42.conf");
        assert_eq!(config_file_name("", 7), "fb-7.conf");
        for name in [
            "laptop",
            "Alice's phone",
            "a very long device name",
            "✓✓",
            "x-",
        ] {
            let file = config_file_name(name, 123_456_789_012_345);
            let stem = file.strip_suffix(".conf").unwrap();
            assert!((1..=15).contains(&stem.len()), "{file}");
            assert!(
                stem.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_=+.-".contains(c)),
                "{file}"
            );
            assert!(!stem.ends_with('-'), "{file}");
        }
    }

    #[test]
    fn byte_counts_read_in_human_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(23 * 1024 * 1024 + 1), "23 MiB");
        assert_eq!(human_bytes(4 * 1024 * 1024 * 1024), "4.0 GiB");
        assert_eq!(human_bytes(u64::MAX), "16384 PiB");
    }
}
