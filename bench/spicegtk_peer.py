"""spice-gtk as a measured peer: a SpiceSession (SpiceClientGLib, through PyGObject) that links
every channel and decodes every display update into its own primary surface, as remote-viewer's
display widget would before painting it; it reports how many updates it took.

Run with Debian's own Python (python3-gi and gir1.2-spiceclientglib-2.0 are Debian packages,
not in a venv): ``/usr/bin/python3 bench/spicegtk_peer.py HOST PORT SECONDS``. It prints
``invalidates N`` at the end. bench/bench_session.py drives it.
"""

import signal
import sys

import gi

gi.require_version("SpiceClientGLib", "2.0")
from gi.repository import GLib, GObject, SpiceClientGLib  # noqa: E402

# spice_session_connect and spice_channel_connect are both "connect" in the typelib, which
# shadows GObject's signal connect: each is called by its class's name.
on = GObject.Object.connect


def main() -> int:
    host, port, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    loop = GLib.MainLoop()
    session = SpiceClientGLib.Session()
    session.props.host = host
    session.props.port = port
    counts = {"invalidates": 0, "primaries": 0}

    def invalidated(channel, x, y, w, h):
        counts["invalidates"] += 1

    def primary(channel, *args):
        counts["primaries"] += 1

    def new_channel(session, channel):
        if isinstance(channel, SpiceClientGLib.DisplayChannel):
            on(channel, "display-invalidate", invalidated)
            on(channel, "display-primary-create", primary)
        SpiceClientGLib.Channel.connect(channel)

    on(session, "channel-new", new_channel)
    if not SpiceClientGLib.Session.connect(session):
        print("spice-gtk: cannot connect", file=sys.stderr)
        return 1
    GLib.timeout_add(int(seconds * 1000), loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)  # the bench's stop
    loop.run()
    session.disconnect()
    print(f"invalidates {counts['invalidates']} primaries {counts['primaries']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
