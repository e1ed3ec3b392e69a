//! The `wg-quick` config an admin's device gets when its peer is added: shown once (text,
//! download, QR code), never stored.

use std::net::Ipv4Addr;

use crate::keys::{PrivateKey, PublicKey};
use crate::net::Ipv4Net;
use crate::validate::Endpoint;

/// Persistent keepalive written into peer configs (keeps the admin's NAT mapping open).
pub const PEER_KEEPALIVE: u16 = 25;

/// What goes into one peer's config.
#[derive(Debug)]
pub struct PeerConfig<'a> {
    /// The peer's name (a comment line).
    pub name: &'a str,
    /// The peer's private key: the one time it exists.
    pub private_key: &'a PrivateKey,
    /// The peer's tunnel address.
    pub address: Ipv4Addr,
    /// The appliance's server public key.
    pub server_public_key: &'a PublicKey,
    /// The appliance's tunnel address and prefix (the prefix becomes `AllowedIPs`).
    pub server_address: Ipv4Net,
    /// Where the device reaches the appliance; `None`: the admin fills it in.
    pub endpoint: Option<&'a Endpoint>,
    /// The appliance's listen port (used when the endpoint has none).
    pub listen_port: u16,
}

/// Renders the config (`wg-quick up ./flakeboot.conf` reads it; phone apps scan it as a QR
/// code).
pub fn render(c: &PeerConfig<'_>) -> String {
    let endpoint = match c.endpoint {
        Some(e) => format!("Endpoint = {}\n", e.with_port(c.listen_port)),
        None => format!(
            "# Endpoint = <the appliance's public address or name>:{}\n\
             # ^ fill this in: no endpoint is set in flakeboot's VPN settings\n",
            c.listen_port
        ),
    };
    format!(
        "# flakeboot remote management: {name}\n\
         [Interface]\n\
         PrivateKey = {private}\n\
         Address = {address}/32\n\
         \n\
         [Peer]\n\
         # the flakeboot appliance: its web UI and API answer at {server} through the tunnel\n\
         PublicKey = {public}\n\
         {endpoint}\
         AllowedIPs = {allowed}\n\
         PersistentKeepalive = {PEER_KEEPALIVE}\n",
        name = c.name,
        private = c.private_key.expose_base64(),
        address = c.address,
        server = c.server_address.addr,
        public = c.server_public_key,
        allowed = c.server_address.normalized(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::endpoint;

    fn config(endpoint: Option<&Endpoint>) -> String {
        let private =
            PrivateKey::from_base64("dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=").unwrap();
        let server =
            PublicKey::from_base64("hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=").unwrap();
        render(&PeerConfig {
            name: "laptop",
            private_key: &private,
            address: Ipv4Addr::new(10, 77, 0, 2),
            server_public_key: &server,
            server_address: Ipv4Net::parse("10.77.0.1/24").unwrap(),
            endpoint,
            listen_port: 51820,
        })
    }

    #[test]
    fn renders_a_wg_quick_config() {
        let e = endpoint("office.example.net", false).unwrap();
        assert_eq!(
            config(Some(&e)),
            "# flakeboot remote management: laptop
[Interface]
PrivateKey = dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=
Address = 10.77.0.2/32

[Peer]
# the flakeboot appliance: its web UI and API answer at 10.77.0.1 through the tunnel
PublicKey = hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=
Endpoint = office.example.net:51820
AllowedIPs = 10.77.0.0/24
PersistentKeepalive = 25
"
        );
        let e = endpoint("203.0.113.7:4500", false).unwrap();
        assert!(config(Some(&e)).contains("\nEndpoint = 203.0.113.7:4500\n"));
    }

    #[test]
    fn without_an_endpoint_the_line_is_a_comment_telling_the_admin_to_fill_it() {
        let text = config(None);
        assert!(!text.lines().any(|l| l.starts_with("Endpoint")), "{text}");
        assert!(
            text.contains("# Endpoint = <the appliance's public address or name>:51820"),
            "{text}"
        );
        assert!(text.contains("fill this in"), "{text}");
    }
}
