#!/bin/busybox sh
# /init of ryll's test VM initramfs (PID 1; must never exit, or the kernel panics).
#
# Mounts the pseudo file systems, loads the kernel modules, turns every "ryll.KEY=VALUE" word of the kernel command line
# into a "KEY=VALUE" argument of /bin/drawer, and runs it with its output on the serial port.

/bin/busybox mkdir -p /proc /sys /dev /tmp /sbin /usr/bin /usr/sbin
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

# Markers go to the first serial port (QEMU's -serial file:), the console as a fallback.
out=/dev/console
[ -c /dev/ttyS0 ] && out=/dev/ttyS0
exec </dev/null >"$out" 2>&1

# load NAME: insmod NAME's module and its dependencies (see build.py); already-loaded ones and
# ones whose hardware is absent fail quietly.
load() {
    for ko in $(cat "/lib/modules/$1.deps" 2>/dev/null); do
        insmod "/lib/modules/$ko" 2>/dev/null
    done
}
for mod in $(cat /lib/modules/boot.list); do
    load "$mod"
done

# ryll.load=a,b loads more modules (e.g. qxl); ryll.agent=1 runs /bin/agent (the SPICE guest
# agent, which runs the drawer itself) in the drawer's place; every other ryll.KEY=VALUE goes
# to the program (ryll.clip=TEXT is the agent's, and it keeps it from the drawer).
args=""
prog=drawer
for word in $(cat /proc/cmdline); do
    case "$word" in
        ryll.load=*)
            for mod in $(echo "${word#ryll.load=}" | tr , ' '); do
                load "$mod"
                echo "ryll: loaded $mod"
            done ;;
        ryll.agent=1) prog=agent ;;
        ryll.*=*) args="$args ${word#ryll.}" ;;
    esac
done

echo "ryll: init args:$args"
# shellcheck disable=SC2086  # the words are meant to split
/bin/$prog $args
echo "ryll: error $prog exited with status $?"

# PID 1 stays, and reaps orphans by being a shell.
while :; do
    sleep 3600
done
