#!/usr/bin/env python3
"""Writes the seed inputs the fuzz corpora were grown from (fuzz/work/<target>/seed-*).

The committed corpora (fuzz/corpus/<target>/) are what long runs grown from these seeds kept
after `cargo fuzz cmin`; this script records where they started. Run from fuzz/:
    python3 seeds.py
DHCP seeds are the requests captured from real clients in
crates/protocols/dhcp/tests/fixtures/captured.rs, plus variants of them; TFTP seeds are the
request forms of real clients (PXE ROM tsize probe, curl, tftp-hpa) and one of each opcode.
"""
import pathlib
import re
import struct

ROOT = pathlib.Path(__file__).resolve().parent
CAPTURED = ROOT.parent / "crates/protocols/dhcp/tests/fixtures/captured.rs"


def captured():
    text = CAPTURED.read_text()
    out = {}
    for name, body in re.findall(r"pub const (\w+): \[u8; \d+\] = \[(.*?)\];", text, re.S):
        out[name] = bytes(int(x, 16) for x in re.findall(r"0x([0-9a-fA-F]{2})", body))
    return out


def options(packet):
    """(header, [(code, value)]) of a DHCP packet."""
    head, rest = packet[:240], packet[240:]
    opts = []
    i = 0
    while i < len(rest):
        code = rest[i]
        if code == 0:
            i += 1
            continue
        if code == 255:
            break
        length = rest[i + 1]
        opts.append((code, rest[i + 2 : i + 2 + length]))
        i += 2 + length
    return head, opts


def build(head, opts):
    body = b"".join(bytes([c, len(v)]) + v for c, v in opts) + b"\xff"
    return head + body


def replace(opts, code, value):
    kept = [(c, v) for c, v in opts if c != code]
    return kept + ([(code, value)] if value is not None else [])


def dhcp_seeds():
    seeds = {}
    for name, pkt in captured().items():
        seeds[name.lower()] = pkt
        head, opts = options(pkt)
        # The same client as a REQUEST to this server (option 54), and to port 4011 with a
        # PXE boot item in option 43.
        req = replace(opts, 53, b"\x03")
        seeds[name.lower() + "_request"] = build(head, replace(req, 54, bytes([10, 77, 0, 1])))
        boot_item = bytes([71, 4, 0x80, 0x00, 0x00, 0x00, 255])
        seeds[name.lower() + "_bootitem"] = build(head, replace(req, 43, boot_item))
        # UEFI HTTP boot, x64 (16) and ARM64 (19).
        http = replace(opts, 60, b"HTTPClient:Arch:00016:UNDI:003001")
        seeds[name.lower() + "_http"] = build(head, replace(http, 93, b"\x00\x10"))
        seeds[name.lower() + "_http_arm"] = build(head, replace(http, 93, b"\x00\x13"))
        # ARM64 PXE, RFC 3004 user classes, and a long hardware address.
        seeds[name.lower() + "_arm"] = build(head, replace(opts, 93, b"\x00\x0b"))
        seeds[name.lower() + "_uc"] = build(head, replace(opts, 77, b"\x04iPXE\x03abc"))
        seeds[name.lower() + "_hlen"] = build(head[:2] + b"\x11" + head[3:], opts)
    return seeds


def tftp_seeds():
    knobs = struct.pack("<IHBB", 70000, 1468, 64, 0)
    packets = {
        "pxe_tsize": b"\x00\x01undionly.kpxe\x00octet\x00tsize\x000\x00",
        "curl": b"\x00\x01undionly.kpxe\x00octet\x00tsize\x000\x00blksize\x001468\x00timeout\x006\x00",
        "hpa": b"\x00\x01undionly.kpxe\x00octet\x00",
        "window": b"\x00\x01/ipxe.efi\x00OCTET\x00windowsize\x0016\x00blksize\x0065464\x00",
        "netascii": b"\x00\x01snponly.efi\x00netascii\x00",
        "mail": b"\x00\x01ipxe-arm64.efi\x00mail\x00",
        "wrq": b"\x00\x02undionly.kpxe\x00octet\x00",
        "dotdot": b"\x00\x01../etc/passwd\x00octet\x00",
        "backslash": b"\x00\x01..\\ipxe.efi\x00octet\x00",
        "data": b"\x00\x03\x00\x01hello",
        "ack": b"\x00\x04\x00\x01",
        "error": b"\x00\x05\x00\x08tsize probe\x00",
        "oack": b"\x00\x06tsize\x0070000\x00",
    }
    return {name: knobs + p for name, p in packets.items()}


def http_path_seeds():
    lines = {
        "script": b"G/boot.ipxe?mac=52:54:00:12:34:56\n\n",
        "script_hyphen": b"G/boot.ipxe?mac=52%2D54-00-12-34-56\n\n",
        "kernel": b"G/boot/demo/static/kernel\nbytes=0-99\n",
        "initrd_head": b"H/boot/demo/flake.g3/initrd?mac=52:54:00:12:34:56\nbytes=-500\n",
        "dotdot": b"G/boot/%2e%2e/%2e%2e/kernel\n\n",
        "ipxe": b"G/ipxe/undionly.kpxe\nbytes=100-\n",
        "ipxe_dotdot": b"G/ipxe/..%2fipxe.efi\n\n",
        "report_up": b"P/boot/report\n\nmac=52:54:00:12:34:56&stage=up",
        "report_failed": b"P/boot/report\n\nmac=52:54:00:12:34:56&stage=failed&detail=oops%0Aline",
        "index": b"G/\n\n",
    }
    return lines


def main():
    work = ROOT / "work"
    for target, seeds in {
        "dhcp_packet": {k: b"\x00" + v for k, v in dhcp_seeds().items()}
        | {k + "_4011": b"\x02" + v for k, v in dhcp_seeds().items()},
        "tftp_packet": tftp_seeds(),
        "http_path": http_path_seeds(),
    }.items():
        d = work / target
        d.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            (d / f"seed-{name}").write_bytes(data)
        print(f"{target}: {len(seeds)} seeds in {d}")


if __name__ == "__main__":
    main()
