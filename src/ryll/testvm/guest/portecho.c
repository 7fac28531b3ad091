/*
 * portecho: echoes a virtio-serial port back, uppercased, for ryll's test VM.
 *
 *   portecho NAME
 *
 * Finds the port named NAME (/sys/class/virtio-ports/vportXpY/name; devtmpfs has no udev to
 * make /dev/virtio-ports/NAME, so it makes that symlink itself), opens it and writes back
 * everything it reads with ASCII a-z turned into A-Z, so a client can tell the echo from its
 * own bytes. While nothing is connected on the host side (for a SPICE port: no client has
 * opened the port channel) a read returns 0 and it waits.
 *
 * Markers on stdout (the serial console):
 *   "ryll-echo: up NAME (/dev/vportXpY)"
 *   "ryll-echo: NAME echoed N bytes"     (after each chunk; N counts the whole session)
 *   "ryll: error echo ..."
 *
 * Build: gcc -static -O2 -s -o portecho portecho.c
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest.h"

static int find_port(const char *want, char *dev, size_t size)
{
    DIR *d = opendir("/sys/class/virtio-ports");
    if (!d)
        return -1;
    struct dirent *e;
    int found = -1;
    size_t len = strlen(want);
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], name[256] = {0};
        snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", e->d_name);
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, name, sizeof name - 1);
        close(fd);
        if (n > 0 && !strncmp(name, want, len) && (name[len] == '\n' || !name[len])) {
            snprintf(dev, size, "/dev/%s", e->d_name);
            found = 0;
            break;
        }
    }
    closedir(d);
    return found;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc != 2 || !argv[1][0])
        fail("echo: usage: portecho NAME");
    const char *name = argv[1];
    char dev[300];
    for (int tries = 0; find_port(name, dev, sizeof dev) < 0; tries++) {
        if (tries >= 300)
            fail("echo: no virtio-serial port named %s", name);
        usleep(100 * 1000);
    }
    mkdir("/dev/virtio-ports", 0755);
    char link[400], target[310];
    snprintf(link, sizeof link, "/dev/virtio-ports/%s", name);
    snprintf(target, sizeof target, "../%s", dev + 5); /* "../vportXpY" */
    if (symlink(target, link) < 0) {
        /* only a convenience (it may exist already) */
    }
    int fd;
    for (int tries = 0; (fd = open(dev, O_RDWR)) < 0; tries++) {
        if (tries >= 100)
            fail("echo: cannot open %s: %s", dev, strerror(errno));
        usleep(100 * 1000);
    }
    say("ryll-echo: up %s (%s)", name, dev);

    static char buf[65536];
    unsigned long long total = 0;
    for (;;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        int r = poll(&pfd, 1, 1000);
        if (r < 0 && errno != EINTR)
            fail("echo: poll %s: %s", dev, strerror(errno));
        if (r <= 0)
            continue;
        if (pfd.revents & (POLLHUP | POLLERR) && !(pfd.revents & POLLIN)) {
            usleep(100 * 1000); /* the host side is not connected */
            continue;
        }
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            fail("echo: read %s: %s", dev, strerror(errno));
        }
        if (n == 0) {
            usleep(100 * 1000); /* not connected */
            continue;
        }
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] >= 'a' && buf[i] <= 'z')
                buf[i] -= 'a' - 'A';
        ssize_t off = 0;
        while (off < n) {
            ssize_t w = write(fd, buf + off, n - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                say("ryll-echo: %s write: %s", name, w < 0 ? strerror(errno) : "0 bytes");
                break; /* the host went away mid-echo: drop the rest */
            }
            off += w;
        }
        total += (unsigned long long)off;
        say("ryll-echo: %s echoed %llu bytes", name, total);
    }
}
