#!/bin/sh
# usage: flakeboot-logs.sh netconsole   the kernel's console to the appliance (netconsole, UDP 6666)
#        flakeboot-logs.sh journal      the journal to the appliance's syslog (UDP 514), until killed
#        flakeboot-logs.sh send TEXT    one syslog line (RFC 5424) to the appliance
#
# The appliance is the host of `flakeboot.server=http://HOST[:PORT]` on the kernel command line:
# known only at boot, so netconsole is configured at run time through configfs
# (/sys/kernel/config/netconsole/flakeboot: the interface and source address of the route to
# HOST, extended format so the appliance gets each message's level) instead of a static
# `netconsole=` kernel parameter. The appliance attributes lines by the address they come from
# (the machine's DHCP lease), so nothing here names the machine. Syslog goes out with
# util-linux `logger --udp --rfc5424`. Without flakeboot.server= it does nothing and exits 0.
#
# Used as is by the NixOS module (nixos/module.nix); nixos/check.sh runs it.
# Environment (tests): FLAKEBOOT_CMDLINE (default /proc/cmdline), FLAKEBOOT_CONFIGFS (default
# /sys/kernel/config), FLAKEBOOT_ROUTE (the output of `ip -4 route get HOST`, instead of asking),
# FLAKEBOOT_SYSLOG_PORT (514), FLAKEBOOT_NETCONSOLE_PORT (6666), FLAKEBOOT_JOURNAL (the command
# whose lines `journal` forwards; default `journalctl -b -f -n all -o short --cursor-file=
# /run/flakeboot-journal.cursor`, so a restarted forwarder goes on after the last line sent).
set -u

cmdline_file=${FLAKEBOOT_CMDLINE:-/proc/cmdline}
configfs=${FLAKEBOOT_CONFIGFS:-/sys/kernel/config}
syslog_port=${FLAKEBOOT_SYSLOG_PORT:-514}
netconsole_port=${FLAKEBOOT_NETCONSOLE_PORT:-6666}

log() { echo "flakeboot-logs: $*" >&2; }

# The value of KEY= on the kernel command line (the last one wins, as for the kernel).
cmdline_value() {
    value=
    for word in $(cat "$cmdline_file"); do
        case $word in "$1"=*) value=${word#"$1"=} ;; esac
    done
    printf '%s' "$value"
}

# The appliance's address: flakeboot.server=http://HOST[:PORT][/...] -> HOST.
server_host() {
    url=$(cmdline_value flakeboot.server)
    hostport=${url#*://}
    hostport=${hostport%%/*}
    printf '%s' "${hostport%:*}"
}

# A dotted IPv4 address (netconsole and this script speak IPv4 only).
is_ipv4() {
    case $1 in
        *[!0-9.]* | '' | .* | *. | *..*) return 1 ;;
    esac
    [ "$(printf '%s' "$1" | tr -cd . | wc -c)" -eq 3 ]
}

netconsole() {
    host=$1
    route=${FLAKEBOOT_ROUTE-$(ip -4 route get "$host" 2>/dev/null | head -n1)}
    dev=$(printf '%s\n' "$route" | sed -n 's/.* dev \([^ ]*\).*/\1/p')
    src=$(printf '%s\n' "$route" | sed -n 's/.* src \([0-9.]*\).*/\1/p')
    if [ -z "$dev" ] || [ -z "$src" ]; then
        log "no route to $host ($route): netconsole not configured"
        return 1
    fi
    if [ ! -d "$configfs/netconsole" ]; then
        modprobe netconsole 2>/dev/null || true
        mountpoint -q "$configfs" 2>/dev/null || mount -t configfs none "$configfs" 2>/dev/null || true
    fi
    if [ ! -d "$configfs/netconsole" ]; then
        log "$configfs/netconsole is missing (no netconsole module or configfs): netconsole not configured"
        return 1
    fi
    target=$configfs/netconsole/flakeboot
    mkdir -p "$target" || return 1
    # Settings can only change while the target is disabled.
    [ "$(cat "$target/enabled" 2>/dev/null)" = 1 ] && echo 0 >"$target/enabled"
    echo "$dev" >"$target/dev_name" &&
        echo "$src" >"$target/local_ip" &&
        echo "$host" >"$target/remote_ip" &&
        echo "$netconsole_port" >"$target/remote_port" &&
        echo 1 >"$target/extended" &&
        echo 1 >"$target/enabled" || {
        log "could not configure $target"
        return 1
    }
    log "kernel messages go to $host:$netconsole_port from $src on $dev"
}

# util-linux logger on PATH, by its path (busybox sh would run its own applet for a bare
# `logger`, and busybox's cannot send to a server).
find_logger() {
    old_ifs=$IFS
    IFS=:
    for dir in $PATH; do
        if [ -x "$dir/logger" ] && "$dir/logger" --help 2>&1 | grep -q -- --server; then
            IFS=$old_ifs
            printf '%s' "$dir/logger"
            return 0
        fi
    done
    IFS=$old_ifs
    return 1
}

# Lines of stdin as syslog messages (logger reads stdin when given no message).
to_syslog() {
    logger=$(find_logger) || {
        log "util-linux logger (with --server) is not on PATH: nothing sent"
        return 1
    }
    "$logger" --udp --rfc5424 --server "$1" --port "$syslog_port" -t "$2"
}

host=$(server_host)
if [ -z "$host" ]; then
    exit 0
fi
if ! is_ipv4 "$host"; then
    log "flakeboot.server= names $host, not an IPv4 address: nothing sent"
    exit 1
fi

case ${1:-} in
    netconsole) netconsole "$host" ;;
    journal)
        # A pipeline that ends when the journal reader does; the unit restarts it.
        ${FLAKEBOOT_JOURNAL:-journalctl -b -f -n all -o short --cursor-file=/run/flakeboot-journal.cursor} | to_syslog "$host" journal ;;
    send)
        shift
        printf '%s\n' "$*" | to_syslog "$host" flakeboot ;;
    *)
        echo "usage: $0 netconsole | journal | send TEXT" >&2
        exit 2 ;;
esac
