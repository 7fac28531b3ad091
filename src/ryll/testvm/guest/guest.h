/* What every program of ryll's test VM guest shares: serial markers and how to stop.
 *
 * stdout is the first serial port (init.sh); tests wait for the "ryll: ..." lines. */
#ifndef RYLL_GUEST_H
#define RYLL_GUEST_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

/* One marker line, written with one write() so markers never interleave. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2), unused));
static void say(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (n > (int)sizeof buf - 2)
        n = sizeof buf - 2;
    buf[n++] = '\n';
    ssize_t off = 0;
    while (off < n) {
        ssize_t w = write(1, buf + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += w;
    }
}

static void idle_forever(void) __attribute__((noreturn, unused));
static void idle_forever(void)
{
    say("ryll: idle");
    for (;;)
        sleep(3600);
}

/* "ryll: error ...", then stay alive: the test sees the error line instead of a kernel panic
 * (for PID 1's children it would only be an exit, but a live process keeps the VM's state). */
static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn, unused));
static void fail(const char *fmt, ...)
{
    char buf[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    say("ryll: error %s", buf);
    for (;;)
        sleep(3600);
}

#endif
