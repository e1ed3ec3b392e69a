//! Reading what a client says about itself, and encoding PXE option 43 (pure, no I/O).
//!
//! - [`parse_request`] turns received bytes into a [`Message`] that is safe to use: dhcproto
//!   decodes leniently, and `Message::chaddr()` panics on an `hlen` above 16, so every packet
//!   goes through this checked constructor first.
//! - [`ClientInfo::from_message`] reads options 93, 60, 77, 175, 97 and 94 into plain data.
//! - [`encode_pxe_vendor_options`] / [`decode_pxe_vendor_options`] speak the PXE 2.1 vendor
//!   options carried in option 43 (sub-options terminated by 255).

use dhcproto::v4::{DhcpOption, HType, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder};
use flakeboot_catalogue::MacAddr;

/// Why received bytes are not a usable DHCP request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Shorter than the fixed BOOTP header plus the magic cookie.
    #[error("packet is {len} bytes, shorter than a DHCP header (240)")]
    TooShort { len: usize },
    /// The four bytes after the header are not 99.130.83.99.
    #[error("bad DHCP magic cookie {cookie:02x?}")]
    BadMagic { cookie: [u8; 4] },
    /// dhcproto could not decode the header.
    #[error("undecodable DHCP message: {reason}")]
    Decode { reason: String },
    /// A BOOTREPLY arrived where only requests are expected.
    #[error("not a BOOTREQUEST (op {op})")]
    NotRequest { op: u8 },
    /// `hlen` larger than the 16-byte `chaddr` field.
    #[error("hardware address length {hlen} exceeds 16")]
    BadHlen { hlen: u8 },
    /// No option 53.
    #[error("no DHCP message type (option 53)")]
    NoMessageType,
    /// An Ethernet `chaddr` that no NIC sends from: all zeros, broadcast or multicast.
    #[error("client hardware address {mac} is not a machine's (zero, broadcast or multicast)")]
    NotAStation { mac: MacAddr },
}

/// The DHCP magic cookie (RFC 2131 section 3).
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];

/// Why bytes are not a well-framed DHCP message going the expected way: the checks
/// [`parse_request`] and `seen::parse_reply` share, each turning them into its own error.
#[derive(Debug)]
pub(crate) enum Framing {
    TooShort { len: usize },
    BadMagic { cookie: [u8; 4] },
    Decode { reason: String },
    WrongOpcode { op: u8 },
    BadHlen { hlen: u8 },
}

/// Decodes `bytes` as a DHCP message with `opcode`, the magic cookie and `hlen <= 16` (so
/// `chaddr()` cannot panic).
pub(crate) fn decode_checked(bytes: &[u8], opcode: Opcode) -> Result<Message, Framing> {
    if bytes.len() < 240 {
        return Err(Framing::TooShort { len: bytes.len() });
    }
    let mut cookie = [0u8; 4];
    if let Some(c) = bytes.get(236..240) {
        cookie.copy_from_slice(c);
    }
    if cookie != MAGIC_COOKIE {
        return Err(Framing::BadMagic { cookie });
    }
    let msg = Message::decode(&mut Decoder::new(bytes)).map_err(|e| Framing::Decode {
        reason: e.to_string(),
    })?;
    if msg.opcode() != opcode {
        return Err(Framing::WrongOpcode {
            op: bytes.first().copied().unwrap_or(0),
        });
    }
    if msg.hlen() > 16 {
        return Err(Framing::BadHlen { hlen: msg.hlen() });
    }
    Ok(msg)
}

impl From<Framing> for PacketError {
    fn from(f: Framing) -> Self {
        match f {
            Framing::TooShort { len } => PacketError::TooShort { len },
            Framing::BadMagic { cookie } => PacketError::BadMagic { cookie },
            Framing::Decode { reason } => PacketError::Decode { reason },
            Framing::WrongOpcode { op } => PacketError::NotRequest { op },
            Framing::BadHlen { hlen } => PacketError::BadHlen { hlen },
        }
    }
}

/// Decode a received packet into a [`Message`] that is safe to use: a BOOTREQUEST with the
/// magic cookie, `hlen <= 16` (so `chaddr()` cannot panic), a message type, and (for Ethernet)
/// a client address that is one machine's: a zero, broadcast or multicast `chaddr` is refused,
/// so it can never become a lease or a machine record.
pub fn parse_request(bytes: &[u8]) -> Result<Message, PacketError> {
    let msg = decode_checked(bytes, Opcode::BootRequest)?;
    if msg.opts().msg_type().is_none() {
        return Err(PacketError::NoMessageType);
    }
    // hlen <= 16 was checked above, so chaddr() cannot panic.
    if msg.htype() == HType::Eth
        && msg.hlen() == 6
        && let Some(mac) = MacAddr::from_slice(msg.chaddr())
        && !mac.is_station()
    {
        return Err(PacketError::NotAStation { mac });
    }
    Ok(msg)
}

/// Option 175: iPXE's encapsulated options (present only when the client runs iPXE).
pub const OPTION_IPXE_ENCAP: u8 = 175;

/// Everything the boot decision needs to know about a client, read from one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// From `chaddr` when the hardware type is Ethernet with a 6-byte address.
    pub mac: Option<MacAddr>,
    /// Option 53.
    pub message_type: Option<MessageType>,
    /// Option 93: the first architecture type of the list (RFC 4578).
    pub arch: Option<u16>,
    /// Option 60, as text (lossy UTF-8), e.g. `PXEClient:Arch:00000:UNDI:002001`.
    pub vendor_class: Option<String>,
    /// Option 77, split into classes: RFC 3004 length-prefixed, or the bare string as one class.
    pub user_classes: Vec<String>,
    /// Option 175 present: the client runs iPXE.
    pub ipxe_encap: bool,
    /// Option 97: client machine identifier (type byte 0 and a 16-byte GUID), raw.
    pub client_guid: Option<Vec<u8>>,
    /// Option 94: client network interface identifier (type, major, minor).
    pub ndi: Option<(u8, u8, u8)>,
}

/// Which boot protocol the vendor class (option 60) announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VendorKind {
    /// `PXEClient...`: PXE firmware (or iPXE, which says the same).
    PxeClient,
    /// `HTTPClient...`: UEFI HTTP boot.
    HttpClient,
}

impl VendorKind {
    /// The bare class name a server puts in its own option 60.
    pub fn as_str(self) -> &'static str {
        match self {
            VendorKind::PxeClient => "PXEClient",
            VendorKind::HttpClient => "HTTPClient",
        }
    }
}

impl ClientInfo {
    /// Read a client's identity from its request. Never fails: missing or odd options are
    /// simply absent.
    pub fn from_message(msg: &Message) -> ClientInfo {
        let mut info = ClientInfo {
            message_type: msg.opts().msg_type(),
            ..ClientInfo::default()
        };
        if msg.htype() == HType::Eth && msg.hlen() == 6 {
            // hlen is 6 here, so chaddr() cannot index past its 16-byte array.
            info.mac = MacAddr::from_slice(msg.chaddr());
        }
        for (code, opt) in msg.opts().iter() {
            match (code, opt) {
                (_, DhcpOption::ClientSystemArchitecture(arch)) => info.arch = Some(arch.0),
                (_, DhcpOption::ClassIdentifier(bytes)) => {
                    info.vendor_class = Some(String::from_utf8_lossy(bytes).into_owned());
                }
                (_, DhcpOption::UserClass(bytes)) => info.user_classes = parse_user_class(bytes),
                (_, DhcpOption::ClientMachineIdentifier(bytes)) => {
                    info.client_guid = Some(bytes.clone());
                }
                (_, DhcpOption::ClientNetworkInterface(t, major, minor)) => {
                    info.ndi = Some((*t, *major, *minor));
                }
                (OptionCode::Unknown(OPTION_IPXE_ENCAP), _) => info.ipxe_encap = true,
                _ => {}
            }
        }
        if info.arch.is_none() {
            info.arch = info
                .vendor_class
                .as_deref()
                .and_then(arch_from_vendor_class);
        }
        info
    }

    /// The client announces iPXE in its user class (option 77).
    pub fn is_ipxe(&self) -> bool {
        self.user_classes.iter().any(|c| c == "iPXE")
    }

    /// What the vendor class (option 60) announces, if anything flakeboot serves.
    pub fn vendor_kind(&self) -> Option<VendorKind> {
        let vc = self.vendor_class.as_deref()?;
        if vc.starts_with("PXEClient") {
            Some(VendorKind::PxeClient)
        } else if vc.starts_with("HTTPClient") {
            Some(VendorKind::HttpClient)
        } else {
            None
        }
    }
}

/// Option 77 as a list of classes. RFC 3004 says `len class len class ...`; iPXE and many
/// firmwares send the bare string (`iPXE`) instead. When the bytes parse exactly as RFC 3004
/// those classes are returned, otherwise the whole value is one bare class.
pub fn parse_user_class(bytes: &[u8]) -> Vec<String> {
    let mut classes = Vec::new();
    let mut rest = bytes;
    let rfc3004 = loop {
        match rest.split_first() {
            None => break !classes.is_empty(),
            Some((&len, tail)) => {
                let len = usize::from(len);
                match (len, tail.get(..len), tail.get(len..)) {
                    (1.., Some(class), Some(after)) => {
                        classes.push(String::from_utf8_lossy(class).into_owned());
                        rest = after;
                    }
                    _ => break false,
                }
            }
        }
    };
    if rfc3004 {
        classes
    } else if bytes.is_empty() {
        Vec::new()
    } else {
        vec![String::from_utf8_lossy(bytes).into_owned()]
    }
}

/// The architecture from a PXE vendor class `PXEClient:Arch:00007:UNDI:003016` (the decimal
/// field after `Arch:`), for clients that send no option 93.
pub fn arch_from_vendor_class(vc: &str) -> Option<u16> {
    let mut parts = vc.split(':');
    while let Some(p) = parts.next() {
        if p == "Arch" {
            return parts.next()?.parse().ok();
        }
    }
    None
}

/// PXE 2.1 vendor option 43 sub-option codes (PXE specification 2.1, section 2.4).
pub mod pxe_sub {
    /// PXE_DISCOVERY_CONTROL (1 byte of flags).
    pub const DISCOVERY_CONTROL: u8 = 6;
    /// PXE_BOOT_SERVERS (type, count, addresses).
    pub const BOOT_SERVERS: u8 = 8;
    /// PXE_BOOT_MENU (type, description length, description).
    pub const BOOT_MENU: u8 = 9;
    /// PXE_MENU_PROMPT (timeout, prompt).
    pub const MENU_PROMPT: u8 = 10;
    /// PXE_BOOT_ITEM (type, layer): which boot server type/layer a reply answers.
    pub const BOOT_ITEM: u8 = 71;
    /// Ends the encapsulated options.
    pub const END: u8 = 255;
}

/// PXE_DISCOVERY_CONTROL bits (PXE 2.1 table 2-1).
pub mod discovery {
    /// Bit 0: disable broadcast discovery.
    pub const NO_BROADCAST: u8 = 1 << 0;
    /// Bit 1: disable multicast discovery.
    pub const NO_MULTICAST: u8 = 1 << 1;
    /// Bit 2: only use/accept servers in PXE_BOOT_SERVERS.
    pub const ONLY_LISTED: u8 = 1 << 2;
    /// Bit 3: the boot file name is in this reply: download it, no menu, no discovery.
    pub const USE_BOOTFILE: u8 = 1 << 3;
}

/// One PXE 2.1 vendor sub-option (option 43 when option 60 is `PXEClient`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PxeSubOption {
    /// Sub-option 6.
    DiscoveryControl(u8),
    /// Sub-option 10: seconds to wait (255: forever, 0: boot the first item at once) and text.
    MenuPrompt { timeout: u8, prompt: Vec<u8> },
    /// Sub-option 71: boot server type and layer.
    BootItem { server_type: u16, layer: u16 },
    /// Any other sub-option, kept raw.
    Other { code: u8, data: Vec<u8> },
}

/// Why an option 43 value is not a valid list of PXE sub-options.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PxeOptionError {
    /// A sub-option's length runs past the end of the option.
    #[error("PXE sub-option {code} claims {len} bytes, only {available} left")]
    Truncated { code: u8, len: u8, available: usize },
    /// A fixed-size sub-option has the wrong length.
    #[error("PXE sub-option {code} has length {len}, expected {expected}")]
    BadLength {
        code: u8,
        len: usize,
        expected: usize,
    },
    /// A sub-option's data is longer than 255 bytes and cannot be encoded.
    #[error("PXE sub-option {code} is {len} bytes, the maximum is 255")]
    TooLong { code: u8, len: usize },
}

/// The option 43 a proxyDHCP offer carries: discovery control "use the boot file in this
/// reply" (bit 3), then END. This is what Pixiecore and dnsmasq (with no PXE menu) send:
/// `06 01 08 ff`.
pub fn proxy_vendor_options() -> Vec<u8> {
    vec![
        pxe_sub::DISCOVERY_CONTROL,
        1,
        discovery::USE_BOOTFILE,
        pxe_sub::END,
    ]
}

/// Encode PXE sub-options as the value of option 43, terminated by END (255).
pub fn encode_pxe_vendor_options(subs: &[PxeSubOption]) -> Result<Vec<u8>, PxeOptionError> {
    let mut out = Vec::new();
    for sub in subs {
        let (code, data) = match sub {
            PxeSubOption::DiscoveryControl(bits) => (pxe_sub::DISCOVERY_CONTROL, vec![*bits]),
            PxeSubOption::MenuPrompt { timeout, prompt } => {
                let mut d = vec![*timeout];
                d.extend_from_slice(prompt);
                (pxe_sub::MENU_PROMPT, d)
            }
            PxeSubOption::BootItem { server_type, layer } => {
                let mut d = server_type.to_be_bytes().to_vec();
                d.extend_from_slice(&layer.to_be_bytes());
                (pxe_sub::BOOT_ITEM, d)
            }
            PxeSubOption::Other { code, data } => (*code, data.clone()),
        };
        let len = u8::try_from(data.len()).map_err(|_| PxeOptionError::TooLong {
            code,
            len: data.len(),
        })?;
        out.push(code);
        out.push(len);
        out.extend_from_slice(&data);
    }
    out.push(pxe_sub::END);
    Ok(out)
}

/// Decode the value of option 43 into PXE sub-options (pad 0 skipped, stops at END).
pub fn decode_pxe_vendor_options(bytes: &[u8]) -> Result<Vec<PxeSubOption>, PxeOptionError> {
    let mut subs = Vec::new();
    let mut rest = bytes;
    while let Some((&code, tail)) = rest.split_first() {
        match code {
            0 => {
                rest = tail;
                continue;
            }
            pxe_sub::END => break,
            _ => {}
        }
        let Some((&len, tail)) = tail.split_first() else {
            return Err(PxeOptionError::Truncated {
                code,
                len: 0,
                available: 0,
            });
        };
        let (Some(data), Some(after)) =
            (tail.get(..usize::from(len)), tail.get(usize::from(len)..))
        else {
            return Err(PxeOptionError::Truncated {
                code,
                len,
                available: tail.len(),
            });
        };
        rest = after;
        let bad = |expected| PxeOptionError::BadLength {
            code,
            len: data.len(),
            expected,
        };
        subs.push(match code {
            pxe_sub::DISCOVERY_CONTROL => match data {
                [bits] => PxeSubOption::DiscoveryControl(*bits),
                _ => return Err(bad(1)),
            },
            pxe_sub::MENU_PROMPT => match data.split_first() {
                Some((&timeout, prompt)) => PxeSubOption::MenuPrompt {
                    timeout,
                    prompt: prompt.to_vec(),
                },
                None => return Err(bad(1)),
            },
            pxe_sub::BOOT_ITEM => match data {
                [t0, t1, l0, l1] => PxeSubOption::BootItem {
                    server_type: u16::from_be_bytes([*t0, *t1]),
                    layer: u16::from_be_bytes([*l0, *l1]),
                },
                _ => return Err(bad(4)),
            },
            _ => PxeSubOption::Other {
                code,
                data: data.to_vec(),
            },
        });
    }
    Ok(subs)
}

/// The PXE boot item (sub-option 71) a client asks for in its option 43, if any.
pub fn requested_boot_item(msg: &Message) -> Option<(u16, u16)> {
    let Some(DhcpOption::VendorExtensions(bytes)) = msg.opts().get(OptionCode::VendorExtensions)
    else {
        return None;
    };
    decode_pxe_vendor_options(bytes)
        .ok()?
        .into_iter()
        .find_map(|s| match s {
            PxeSubOption::BootItem { server_type, layer } => Some((server_type, layer)),
            _ => None,
        })
}

#[cfg(test)]
mod tests;
