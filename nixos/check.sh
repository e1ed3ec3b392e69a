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
    if FLAKEBOOT_CMDLINE=$tmp/cmdline $sh "$here/flakeboot-logs.sh" send hello 2>/dev/null; then
        echo "ok   logs without flakeboot.server= does nothing ($sh)"
    else echo "FAIL logs without server ($sh)"; fail=1; fi

    # netconsole through a stand-in for configfs (the route as `ip -4 route get` prints it).
    rm -rf "$tmp/cfs" && mkdir -p "$tmp/cfs/netconsole"
    echo "console=ttyS0 flakeboot.server=http://10.77.0.1" >"$tmp/cmdline"
    FLAKEBOOT_CMDLINE=$tmp/cmdline FLAKEBOOT_CONFIGFS=$tmp/cfs \
        FLAKEBOOT_ROUTE="10.77.0.1 dev eth0 src 10.77.0.100 uid 0" \
        $sh "$here/flakeboot-logs.sh" netconsole 2>/dev/null
    t=$tmp/cfs/netconsole/flakeboot
    got="$(cat "$t/dev_name" "$t/local_ip" "$t/remote_ip" "$t/remote_port" "$t/extended" "$t/enabled" 2>/dev/null | tr '\n' ' ')"
    if [ "$got" = "eth0 10.77.0.100 10.77.0.1 6666 1 1 " ]; then echo "ok   logs netconsole target ($sh)"
    else echo "FAIL logs netconsole target ($sh): $got"; fail=1; fi
    if FLAKEBOOT_CMDLINE=$tmp/cmdline FLAKEBOOT_CONFIGFS=$tmp/cfs FLAKEBOOT_ROUTE="" \
        $sh "$here/flakeboot-logs.sh" netconsole 2>/dev/null; then
        echo "FAIL logs netconsole without a route succeeded ($sh)"; fail=1
    else echo "ok   logs netconsole without a route fails ($sh)"; fi

    # send and journal: real util-linux logger to a UDP listener on loopback.
    rm -f "$tmp/udp"
    python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
s.settimeout(10)
for _ in range(3):
    print(s.recv(4096).decode(), flush=True)
' >"$tmp/udp" &
listener=$!
i=0; while [ ! -s "$tmp/udp" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
port=$(head -n1 "$tmp/udp")
echo "console=ttyS0 flakeboot.server=http://127.0.0.1:8080/x" >"$tmp/cmdline"
printf 'Dec 03 12:00:01 node sshd[42]: one\nDec 03 12:00:02 node kernel: two\n' >"$tmp/journal"
FLAKEBOOT_CMDLINE=$tmp/cmdline FLAKEBOOT_SYSLOG_PORT=$port $sh "$here/flakeboot-logs.sh" send "stage 2 up"
FLAKEBOOT_CMDLINE=$tmp/cmdline FLAKEBOOT_SYSLOG_PORT=$port FLAKEBOOT_JOURNAL="cat $tmp/journal" \
    $sh "$here/flakeboot-logs.sh" journal
wait $listener
if grep -q '^<13>1 .* flakeboot .*stage 2 up$' "$tmp/udp" && grep -q '^<13>1 .* journal .*sshd\[42\]: one$' "$tmp/udp" &&
    grep -q '^<13>1 .* journal .*kernel: two$' "$tmp/udp"; then
    echo "ok   logs send and journal over syslog ($sh)"
else echo "FAIL logs send and journal ($sh): $(cat "$tmp/udp")"; fail=1; fi
done
exit $fail
