#!/bin/sh
# usage: nixos/check.sh
# What can be checked here without nixpkgs: every .nix file of the repository parses
# (nix-instantiate --parse), the flake's outputs evaluate without inputs (module and template are
# present), and the boot-time scripts do what the module relies on (run with busybox sh and dash).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
fail=0

for f in $(cd "$repo" && git ls-files --cached --others --exclude-standard '*.nix'); do
    if ! nix-instantiate --parse "$repo/$f" >/dev/null 2>"/tmp/fb-parse.$$"; then
        echo "FAIL parse $f: $(cat "/tmp/fb-parse.$$")"; fail=1
    else
        echo "ok   parse $f"
    fi
done
rm -f "/tmp/fb-parse.$$"

# The flake's own outputs (no inputs, so no nixpkgs needed): the module is a function, the template
# has a path with a flake.nix.
got=$(nix-instantiate --eval --strict -E "
  let f = (import $here/flake.nix).outputs { self = f; };
  in [ (builtins.isFunction f.nixosModules.default)
       (builtins.pathExists (f.templates.default.path + \"/flake.nix\")) ]")
if [ "$got" = "[ true true ]" ]; then echo "ok   flake outputs"; else echo "FAIL flake outputs: $got"; fail=1; fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for sh in dash "busybox sh"; do
    echo "console=ttyS0 flakeboot.hostname=node-7 flakeboot.server=http://127.0.0.1:9" >"$tmp/cmdline"
    : >"$tmp/hostname"
    FLAKEBOOT_CMDLINE=$tmp/cmdline FLAKEBOOT_HOSTNAME_FILE=$tmp/hostname $sh "$here/flakeboot-settings.sh" >/dev/null
    if [ "$(cat "$tmp/hostname")" = node-7 ]; then echo "ok   settings hostname ($sh)"; else echo "FAIL settings hostname ($sh)"; fail=1; fi
    echo "flakeboot.hostname=bad;name" >"$tmp/cmdline"
    if FLAKEBOOT_CMDLINE=$tmp/cmdline FLAKEBOOT_HOSTNAME_FILE=$tmp/hostname $sh "$here/flakeboot-settings.sh" 2>/dev/null; then
        echo "FAIL settings accepted a bad host name ($sh)"; fail=1
    else echo "ok   settings refuses a bad host name ($sh)"; fi
    echo "console=ttyS0" >"$tmp/cmdline"
    if FLAKEBOOT_CMDLINE=$tmp/cmdline $sh "$here/flakeboot-report.sh" up 2>/dev/null; then
        echo "ok   report without flakeboot.server= does nothing ($sh)"
    else echo "FAIL report without server ($sh)"; fail=1; fi
done
exit $fail
