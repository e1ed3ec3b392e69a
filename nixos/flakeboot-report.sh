#!/bin/sh
# usage: flakeboot-report.sh up
#        flakeboot-report.sh failed DETAIL
#        flakeboot-report.sh wait      (systemd: wait for the boot to finish, then up or failed)
#
# Tell the flakeboot appliance how this netbooted system's boot ended: one
#   POST <flakeboot.server>/boot/report   mac=<MAC>&stage=up | mac=<MAC>&stage=failed&detail=<text>
# <flakeboot.server> comes from the kernel command line (`flakeboot.server=http://10.77.0.1`),
# <MAC> is the address of the interface with the default route (else the first interface that is
# up and not loopback). Posts with curl when it is there, else by hand with nc. Retries for about
# a minute (the appliance may be restarting); exits 0 once the appliance answered 2xx, 1 otherwise,
# 0 without doing anything when the command line names no server (not booted by flakeboot).
#
# Used as is by the NixOS module (nixos/module.nix) and by the NixOS-shaped test fixture's stage 2
# (hil-tests), so the boot-time code the module runs is the code the tests run.
# Environment (tests): FLAKEBOOT_CMDLINE (default /proc/cmdline), FLAKEBOOT_SYSFS (default /sys),
# FLAKEBOOT_REPORT_TRIES (default 30, two seconds apart).
set -u

cmdline_file=${FLAKEBOOT_CMDLINE:-/proc/cmdline}
sysfs=${FLAKEBOOT_SYSFS:-/sys}
tries=${FLAKEBOOT_REPORT_TRIES:-30}

log() { echo "flakeboot-report: $*" >&2; }

# The value of KEY= on the kernel command line (the last one wins, as for the kernel).
cmdline_value() {
    value=
    for word in $(cat "$cmdline_file"); do
        case $word in "$1"=*) value=${word#"$1"=} ;; esac
    done
    printf '%s' "$value"
}

# The interface with the default route; else the first up, non-loopback interface.
report_interface() {
    dev=$(ip route show 2>/dev/null | sed -n 's/^default .* dev \([^ ]*\).*/\1/p' | head -n1)
    if [ -z "$dev" ]; then
        for path in "$sysfs"/class/net/*; do
            name=${path##*/}
            [ "$name" = lo ] && continue
            [ "$(cat "$path/operstate" 2>/dev/null)" = up ] || continue
            dev=$name
            break
        done
    fi
    printf '%s' "$dev"
}

# Percent-encode for an application/x-www-form-urlencoded body.
urlencode() {
    printf '%s' "$1" | od -An -tx1 -v | tr -s ' \n' '  ' | {
        out=
        for hex in $(cat); do
            case $hex in
                3[0-9] | 4[1-9a-f] | 5[0-9a] | 6[1-9a-f] | 7[0-9a] | 2d | 2e | 5f | 7e)
                    out="$out$(printf "\\$(printf '%03o' "0x$hex")")" ;;
                *) out="$out%$(echo "$hex" | tr a-f A-F)" ;;
            esac
        done
        printf '%s' "$out"
    }
}

post() {
    if command -v curl >/dev/null 2>&1; then
        code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 \
            -H 'Content-Type: application/x-www-form-urlencoded' --data-binary "$2" "$1") || return 1
        case $code in 2??) return 0 ;; *) log "$1 answered $code"; return 1 ;; esac
    fi
    # No curl (busybox systems): the request by hand through nc. (Debian 12's busybox 1.35 wget
    # segfaults on the appliance's 204 answer to a POST, so it is not used.)
    hostport=${1#http://}
    path=/${hostport#*/}
    hostport=${hostport%%/*}
    host=${hostport%:*}
    port=80
    case $hostport in *:*) port=${hostport##*:} ;; esac
    status=$(printf 'POST %s HTTP/1.0\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s' \
        "$path" "$hostport" "${#2}" "$2" | nc -w 10 "$host" "$port" | head -n1 | tr -d '\r')
    case $status in "HTTP/1."?" 2"*) return 0 ;; esac
    log "$1 answered '${status:-nothing}'"
    return 1
}

stage=${1:-}
detail=
case $stage in
    up) ;;
    failed) detail=${2:-boot failed} ;;
    wait)
        # systemd: `is-system-running --wait` returns once the boot transaction is done.
        state=$(systemctl is-system-running --wait 2>/dev/null)
        case $state in
            running) stage=up ;;
            *)
                stage=failed
                units=$(systemctl list-units --state=failed --plain --no-legend 2>/dev/null |
                    awk '{print $1}' | tr '\n' ' ')
                detail="system $state; failed units: ${units:-none}"
                ;;
        esac
        ;;
    *)
        echo "usage: flakeboot-report.sh up | failed DETAIL | wait" >&2
        exit 2
        ;;
esac

server=$(cmdline_value flakeboot.server)
if [ -z "$server" ]; then
    log "no flakeboot.server= on the kernel command line: nothing to report"
    exit 0
fi
url="${server%/}/boot/report"

attempt=0
while :; do
    attempt=$((attempt + 1))
    dev=$(report_interface)
    mac=
    [ -n "$dev" ] && mac=$(cat "$sysfs/class/net/$dev/address" 2>/dev/null)
    if [ -n "$mac" ]; then
        body="mac=$(urlencode "$mac")&stage=$stage"
        [ "$stage" = failed ] && body="$body&detail=$(urlencode "$detail")"
        if post "$url" "$body"; then
            log "reported stage=$stage for $mac ($dev) to $url"
            exit 0
        fi
    else
        log "no network interface with an address yet"
    fi
    if [ "$attempt" -ge "$tries" ]; then
        log "giving up after $attempt attempts: $url"
        exit 1
    fi
    sleep 2
done
