#!/bin/sh
# usage: flakeboot-settings.sh
#
# Apply the per-machine settings flakeboot puts on the kernel command line, before the network
# comes up (the NixOS module runs it before network-pre.target; the test fixture's stage 2 runs it
# before DHCP):
#   flakeboot.hostname=NAME   the host name (kernel host name, so DHCP clients send it)
#   flakeboot.timezone=ZONE   /etc/localtime -> the zone (when that zone file exists)
# Unknown flakeboot.* keys (flakeboot.host, flakeboot.generation, flakeboot.rev, flakeboot.server)
# are left alone. Prints what it applied, one line per setting.
# Environment (tests): FLAKEBOOT_CMDLINE (default /proc/cmdline), FLAKEBOOT_HOSTNAME_FILE (default
# /proc/sys/kernel/hostname), FLAKEBOOT_ZONEINFO (default /etc/zoneinfo), FLAKEBOOT_ETC (default /etc).
set -eu

cmdline_file=${FLAKEBOOT_CMDLINE:-/proc/cmdline}
hostname_file=${FLAKEBOOT_HOSTNAME_FILE:-/proc/sys/kernel/hostname}
zoneinfo=${FLAKEBOOT_ZONEINFO:-/etc/zoneinfo}
etc=${FLAKEBOOT_ETC:-/etc}

hostname=
timezone=
for word in $(cat "$cmdline_file"); do
    case $word in
        flakeboot.hostname=*) hostname=${word#flakeboot.hostname=} ;;
        flakeboot.timezone=*) timezone=${word#flakeboot.timezone=} ;;
    esac
done

if [ -n "$hostname" ]; then
    # RFC 1123 labels: letters, digits, hyphens, dots; at most 63 characters (the kernel's limit
    # is 64). Anything else is refused rather than half-applied.
    case $hostname in
        *[!A-Za-z0-9.-]* | -* | .*)
            echo "flakeboot-settings: refusing host name '$hostname'" >&2
            exit 1
            ;;
    esac
    if [ ${#hostname} -gt 63 ]; then
        echo "flakeboot-settings: host name longer than 63 characters: '$hostname'" >&2
        exit 1
    fi
    printf '%s\n' "$hostname" >"$hostname_file"
    echo "flakeboot-settings: hostname $hostname"
fi

if [ -n "$timezone" ]; then
    case $timezone in
        *..* | /* | *[!A-Za-z0-9_+/-]*)
            echo "flakeboot-settings: refusing time zone '$timezone'" >&2
            exit 1
            ;;
    esac
    if [ -e "$zoneinfo/$timezone" ]; then
        ln -sfn "$zoneinfo/$timezone" "$etc/localtime"
        echo "flakeboot-settings: timezone $timezone"
    else
        echo "flakeboot-settings: no time zone $timezone in $zoneinfo: ignored" >&2
    fi
fi
