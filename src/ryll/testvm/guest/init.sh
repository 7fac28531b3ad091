#!/bin/busybox sh
# /init of ryll's test VM initramfs (PID 1; must never exit, or the kernel panics).
#
# Mounts the pseudo file systems, loads the kernel modules, turns every "ryll.KEY=VALUE" word of the kernel command line
# into a "KEY=VALUE" argument of /bin/drawer, and runs it with its output on the serial port.
#
# Words for the sound and port programs, which run in the background next to the drawer (and
# are not passed to it):
#   ryll.sound=1               load the HDA sound driver (snd_hda_codec_generic, snd_hda_intel)
#                              and wait for /dev/snd/pcmC0D0p and pcmC0D0c: "ryll: sound ready"
#   ryll.audio=play:FREQ:SECS  /bin/audio play FREQ SECS (guest/audio.c; implies ryll.sound=1)
#   ryll.audio=record:SECS     /bin/audio record SECS
#   ryll.audio=play:1000:2,record:3   both at once (full duplex), one process each
#   ryll.audio_delay=S         wait S seconds before the first run (default 0)
#   ryll.audio_repeat=N        run N times, 0 = forever (default 0)
#   ryll.audio_pause=S         seconds between runs (default 1)
#   ryll.echo=NAME[,NAME...]   /bin/portecho NAME: echo the virtio-serial port NAME, uppercased

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
# to the program (ryll.clip=TEXT is the agent's, and it keeps it from the drawer) except the
# sound, audio and echo words (see the top), which start programs in the background.
args=""
prog=drawer
sound=0
audio=""
audio_delay=0
audio_repeat=0
audio_pause=1
echo_ports=""
for word in $(cat /proc/cmdline); do
    case "$word" in
        ryll.load=*)
            for mod in $(echo "${word#ryll.load=}" | tr , ' '); do
                load "$mod"
                echo "ryll: loaded $mod"
            done ;;
        ryll.agent=1) prog=agent ;;
        ryll.sound=1) sound=1 ;;
        ryll.sound=*) ;;
        ryll.audio=*) audio="${word#ryll.audio=}"; sound=1 ;;
        ryll.audio_delay=*) audio_delay="${word#ryll.audio_delay=}" ;;
        ryll.audio_repeat=*) audio_repeat="${word#ryll.audio_repeat=}" ;;
        ryll.audio_pause=*) audio_pause="${word#ryll.audio_pause=}" ;;
        ryll.echo=*) echo_ports="$echo_ports $(echo "${word#ryll.echo=}" | tr , ' ')" ;;
        ryll.*=*) args="$args ${word#ryll.}" ;;
    esac
done

# Sound: the HDA controller probes its codec asynchronously; the codec driver goes in first
# (there is no modprobe for the controller to ask for it).
sound_up() {
    load snd_hda_codec_generic
    load snd_hda_intel
    n=0
    while [ ! -c /dev/snd/pcmC0D0p ] || [ ! -c /dev/snd/pcmC0D0c ]; do
        n=$((n + 1))
        if [ $n -gt 200 ]; then
            echo "ryll: error sound: no /dev/snd/pcmC0D0p and pcmC0D0c after 20 s"
            return 1
        fi
        sleep 0.1
    done
    echo "ryll: sound ready"
}
if [ "$sound" = 1 ]; then
    (
        sound_up || exit 1
        for spec in $(echo "$audio" | tr , ' '); do
            # shellcheck disable=SC2046  # the words are meant to split
            /bin/audio $(echo "$spec" | tr : ' ') "delay=$audio_delay" \
                "repeat=$audio_repeat" "pause=$audio_pause" &
        done
    ) &
fi
for name in $echo_ports; do
    /bin/portecho "$name" &
done

echo "ryll: init args:$args"
# shellcheck disable=SC2086  # the words are meant to split
/bin/$prog $args
echo "ryll: error $prog exited with status $?"

# PID 1 stays, and reaps orphans by being a shell.
while :; do
    sleep 3600
done
