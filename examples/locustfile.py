"""A Locust load test of a SPICE server with ryll: each user is one SPICE session.

    locust -f examples/locustfile.py --host 127.0.0.1:5900                 # the web UI
    locust -f examples/locustfile.py --host 127.0.0.1:5900 --headless -u 20 -r 5 -t 5m
    locust -f examples/locustfile.py --master --expect-workers 2 ...     # on one machine
    locust -f examples/locustfile.py --worker --master-host MASTER       # on each of many

Each step is a Locust request of type SPICE: connect, wait_for_display, keystroke_latency
(a key press to the first display update after it), screenshot and type. The guest must
draw something when a key is pressed for keystroke_latency to succeed (a console does).
See docs/load-testing.md.
"""

from __future__ import annotations

from locust import between, task

from ryll.locust import SpiceUser


class DeskUser(SpiceUser):
    """Someone at a desk: mostly keystrokes, now and then a screenshot or a word."""

    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        super().on_start()  # connect
        self.wait_for_display()

    @task(5)
    def keystroke(self) -> None:
        self.keystroke_latency("space")

    @task(1)
    def look(self) -> None:
        self.screenshot()

    @task(1)
    def word(self) -> None:
        self.type("ryll\n")
