/*
 * agent: a tiny SPICE guest agent for ryll's test VM.
 *
 * Speaks the vdagent wire format on the virtio-serial port "com.redhat.spice.0" the way
 * spice-vdagentd does: every write is a VDIChunkHeader (port, size) followed by at most
 * VD_AGENT_MAX_DATA_SIZE bytes of a VDAgentMessage stream; each message starts a new chunk.
 * What it does:
 *   - announces MONITORS_CONFIG, REPLY, CLIPBOARD_BY_DEMAND and CLIPBOARD_SELECTION, and answers
 *     a client's announcement (request=1) with its own;
 *   - MONITORS_CONFIG: restarts the drawer in the requested mode of the first monitor
 *     ("/bin/drawer scene=static mode=WxH") and replies VD_AGENT_REPLY;
 *   - clipboard: grabs it with the text of clip=TEXT when a client announces itself, serves
 *     the client's requests; when the client grabs, asks for its text and prints it.
 * It runs the drawer itself (as a child) with its own arguments minus its own (clip=), so
 * /init runs it in the drawer's place when the kernel command line has ryll.agent=1.
 *
 * Markers on stdout (the serial console): "ryll: agent up", "ryll: agent client",
 * "ryll: agent monitors WxH", "ryll: agent clipboard <text>", "ryll: agent no port",
 * "ryll: error ...".
 *
 * Build: gcc -static -O2 -s -o agent agent.c
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "guest.h"

/* vd_agent.h, the parts used here (all little-endian, packed). */
enum { VDP_CLIENT_PORT = 1, VDP_SERVER_PORT = 2 };
#define VD_AGENT_PROTOCOL 1
#define VD_AGENT_MAX_DATA_SIZE 2048
enum {
    VD_AGENT_MONITORS_CONFIG = 2,
    VD_AGENT_REPLY = 3,
    VD_AGENT_CLIPBOARD = 4,
    VD_AGENT_ANNOUNCE_CAPABILITIES = 6,
    VD_AGENT_CLIPBOARD_GRAB = 7,
    VD_AGENT_CLIPBOARD_REQUEST = 8,
    VD_AGENT_CLIPBOARD_RELEASE = 9,
    VD_AGENT_CLIENT_DISCONNECTED = 13,
};
enum {
    VD_AGENT_CAP_MONITORS_CONFIG = 1,
    VD_AGENT_CAP_REPLY = 2,
    VD_AGENT_CAP_CLIPBOARD_BY_DEMAND = 5,
    VD_AGENT_CAP_CLIPBOARD_SELECTION = 6,
};
enum { VD_AGENT_CLIPBOARD_NONE = 0, VD_AGENT_CLIPBOARD_UTF8_TEXT = 1 };
enum { VD_AGENT_SUCCESS = 1, VD_AGENT_ERROR = 2 };
#define CHUNK_HEADER_SIZE 8
#define MSG_HEADER_SIZE 20
/* The largest message this agent takes; bigger ones are skipped. */
#define MAX_MSG (1024 * 1024)

static uint32_t get32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static void put32(uint8_t *p, uint32_t v) { p[0] = v; p[1] = v >> 8; p[2] = v >> 16; p[3] = v >> 24; }

/* ------------------------------------------------------------------------------------------ */
/* The drawer child                                                                             */

static pid_t drawer_pid = -1;
static char **drawer_args; /* NULL-terminated, argv[0] = "/bin/drawer" */

static void start_drawer(char **args)
{
    pid_t pid = fork();
    if (pid < 0) {
        say("ryll: error agent fork: %s", strerror(errno));
        return;
    }
    if (pid == 0) {
        execv("/bin/drawer", args);
        say("ryll: error agent exec /bin/drawer: %s", strerror(errno));
        _exit(127);
    }
    drawer_pid = pid;
}

static void stop_drawer(void)
{
    if (drawer_pid <= 0)
        return;
    kill(drawer_pid, SIGKILL);
    while (waitpid(drawer_pid, NULL, 0) < 0 && errno == EINTR)
        ;
    drawer_pid = -1;
}

/* A drawer that ends by itself is an error, as it is when /init runs it. */
static void check_drawer(int block)
{
    if (drawer_pid <= 0)
        return;
    int status;
    pid_t r = waitpid(drawer_pid, &status, block ? 0 : WNOHANG);
    if (r == drawer_pid) {
        drawer_pid = -1;
        say("ryll: error drawer exited with status %d",
            WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    }
}

static void set_mode(unsigned w, unsigned h)
{
    static char scene[] = "scene=static", mode[32];
    static char *args[] = {"/bin/drawer", scene, mode, NULL};
    snprintf(mode, sizeof mode, "mode=%ux%u", w, h);
    stop_drawer();
    start_drawer(args);
}

/* ------------------------------------------------------------------------------------------ */
/* The port                                                                                     */

static int port_fd = -1;

static int find_port(char *dev, size_t size)
{
    DIR *d = opendir("/sys/class/virtio-ports");
    if (!d)
        return -1;
    struct dirent *e;
    int found = -1;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], name[128] = {0};
        snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", e->d_name);
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, name, sizeof name - 1);
        close(fd);
        if (n > 0 && !strncmp(name, "com.redhat.spice.0", 18) && (name[18] == '\n' || !name[18])) {
            snprintf(dev, size, "/dev/%s", e->d_name);
            found = 0;
            break;
        }
    }
    closedir(d);
    return found;
}

static int write_all(const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(port_fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= w;
    }
    return 0;
}

static int read_all(uint8_t *p, size_t n)
{
    while (n) {
        ssize_t r = read(port_fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == EAGAIN) {
            struct pollfd pfd = {port_fd, POLLIN, 0};
            poll(&pfd, 1, 1000);
            continue;
        }
        if (r <= 0)
            return -1;
        p += r;
        n -= r;
    }
    return 0;
}

/* One VDAgentMessage, split into chunks of at most VD_AGENT_MAX_DATA_SIZE bytes. */
static void send_msg(uint32_t type, const uint8_t *data, uint32_t size)
{
    size_t total = MSG_HEADER_SIZE + size;
    uint8_t *msg = malloc(total);
    if (!msg)
        return;
    memset(msg, 0, MSG_HEADER_SIZE);
    put32(msg, VD_AGENT_PROTOCOL);
    put32(msg + 4, type);
    put32(msg + 16, size);
    if (size)
        memcpy(msg + MSG_HEADER_SIZE, data, size);
    for (size_t off = 0; off < total;) {
        size_t n = total - off > VD_AGENT_MAX_DATA_SIZE ? VD_AGENT_MAX_DATA_SIZE : total - off;
        uint8_t head[CHUNK_HEADER_SIZE];
        put32(head, VDP_CLIENT_PORT);
        put32(head + 4, n);
        if (write_all(head, sizeof head) < 0 || write_all(msg + off, n) < 0) {
            say("ryll: agent write failed: %s", strerror(errno));
            break;
        }
        off += n;
    }
    free(msg);
}

/* ------------------------------------------------------------------------------------------ */
/* The protocol                                                                                 */

static uint32_t client_caps;
static const char *clip_text; /* what this agent grabs with (clip=) */
static int own_clipboard;     /* our grab is current */

static int use_selection(void) { return (client_caps >> VD_AGENT_CAP_CLIPBOARD_SELECTION) & 1; }

static void announce(int request)
{
    uint8_t buf[8];
    put32(buf, request);
    put32(buf + 4, 1u << VD_AGENT_CAP_MONITORS_CONFIG | 1u << VD_AGENT_CAP_REPLY |
                       1u << VD_AGENT_CAP_CLIPBOARD_BY_DEMAND |
                       1u << VD_AGENT_CAP_CLIPBOARD_SELECTION);
    send_msg(VD_AGENT_ANNOUNCE_CAPABILITIES, buf, sizeof buf);
}

/* Clipboard messages: [selection, 3 reserved] when both sides have CLIPBOARD_SELECTION. */
static void send_clip(uint32_t type, uint32_t word, const char *text)
{
    size_t tlen = text ? strlen(text) : 0;
    uint8_t *buf = malloc(8 + tlen);
    if (!buf)
        return;
    size_t n = 0;
    if (use_selection()) {
        memset(buf, 0, 4); /* selection CLIPBOARD */
        n = 4;
    }
    put32(buf + n, word);
    n += 4;
    memcpy(buf + n, text, tlen);
    send_msg(type, buf, n + tlen);
    free(buf);
}

static void print_clipboard(const uint8_t *p, uint32_t n)
{
    char text[201];
    uint32_t i, j = 0;
    for (i = 0; i < n && j < sizeof text - 1; i++) {
        if (!p[i])
            break;
        text[j++] = (p[i] < 32 || p[i] == 127) ? '?' : (char)p[i];
    }
    text[j] = 0;
    say("ryll: agent clipboard %s", text);
}

static void handle(uint32_t type, uint8_t *data, uint32_t size)
{
    if (type == VD_AGENT_CLIPBOARD || type == VD_AGENT_CLIPBOARD_GRAB ||
        type == VD_AGENT_CLIPBOARD_REQUEST || type == VD_AGENT_CLIPBOARD_RELEASE) {
        if (use_selection()) {
            if (size < 4)
                return;
            if (data[0] != 0) /* only the CLIPBOARD selection here */
                return;
            data += 4;
            size -= 4;
        }
    }
    switch (type) {
    case VD_AGENT_ANNOUNCE_CAPABILITIES:
        if (size < 8)
            return;
        client_caps = get32(data + 4);
        say("ryll: agent client caps %#x", client_caps);
        if (get32(data))
            announce(0);
        if (clip_text) {
            send_clip(VD_AGENT_CLIPBOARD_GRAB, VD_AGENT_CLIPBOARD_UTF8_TEXT, NULL);
            own_clipboard = 1;
        }
        break;
    case VD_AGENT_MONITORS_CONFIG: {
        if (size < 8 + 20 || get32(data) < 1) {
            uint8_t r[8];
            put32(r, VD_AGENT_MONITORS_CONFIG);
            put32(r + 4, VD_AGENT_ERROR);
            send_msg(VD_AGENT_REPLY, r, sizeof r);
            return;
        }
        unsigned h = get32(data + 8), w = get32(data + 12);
        say("ryll: agent monitors %ux%u", w, h);
        set_mode(w, h);
        uint8_t r[8];
        put32(r, VD_AGENT_MONITORS_CONFIG);
        put32(r + 4, VD_AGENT_SUCCESS);
        send_msg(VD_AGENT_REPLY, r, sizeof r);
        break;
    }
    case VD_AGENT_CLIPBOARD_GRAB: {
        own_clipboard = 0;
        for (uint32_t i = 0; i + 4 <= size; i += 4) {
            if (get32(data + i) == VD_AGENT_CLIPBOARD_UTF8_TEXT) {
                send_clip(VD_AGENT_CLIPBOARD_REQUEST, VD_AGENT_CLIPBOARD_UTF8_TEXT, NULL);
                break;
            }
        }
        break;
    }
    case VD_AGENT_CLIPBOARD_REQUEST:
        if (size >= 4 && get32(data) == VD_AGENT_CLIPBOARD_UTF8_TEXT && own_clipboard && clip_text)
            send_clip(VD_AGENT_CLIPBOARD, VD_AGENT_CLIPBOARD_UTF8_TEXT, clip_text);
        else
            send_clip(VD_AGENT_CLIPBOARD, VD_AGENT_CLIPBOARD_NONE, NULL);
        break;
    case VD_AGENT_CLIPBOARD:
        if (size >= 4 && get32(data) == VD_AGENT_CLIPBOARD_UTF8_TEXT)
            print_clipboard(data + 4, size - 4);
        break;
    default:
        break;
    }
}

/* Reassembly of one port's message stream (a message may span chunks). */
struct stream {
    uint8_t head[MSG_HEADER_SIZE];
    uint32_t head_len;
    uint8_t *body;
    uint32_t need, have, size, type, skip;
};

static void feed(struct stream *s, const uint8_t *p, uint32_t n, int deliver)
{
    while (n) {
        if (s->skip) {
            uint32_t k = n < s->skip ? n : s->skip;
            s->skip -= k;
            p += k;
            n -= k;
            continue;
        }
        if (s->head_len < MSG_HEADER_SIZE) {
            uint32_t k = MSG_HEADER_SIZE - s->head_len;
            if (k > n)
                k = n;
            memcpy(s->head + s->head_len, p, k);
            s->head_len += k;
            p += k;
            n -= k;
            if (s->head_len < MSG_HEADER_SIZE)
                return;
            if (get32(s->head) != VD_AGENT_PROTOCOL) {
                say("ryll: agent bad protocol %u", get32(s->head));
                s->head_len = 0;
                return; /* drop the rest of this chunk */
            }
            s->type = get32(s->head + 4);
            s->size = get32(s->head + 16);
            if (s->size > MAX_MSG) {
                s->skip = s->size;
                s->head_len = 0;
                continue;
            }
            s->body = malloc(s->size ? s->size : 1);
            s->have = 0;
            if (!s->body) {
                s->skip = s->size;
                s->head_len = 0;
                continue;
            }
        }
        uint32_t k = s->size - s->have;
        if (k > n)
            k = n;
        memcpy(s->body + s->have, p, k);
        s->have += k;
        p += k;
        n -= k;
        if (s->have == s->size) {
            if (deliver)
                handle(s->type, s->body, s->size);
            else if (s->type == VD_AGENT_CLIENT_DISCONNECTED)
                client_caps = 0;
            free(s->body);
            s->body = NULL;
            s->head_len = 0;
        }
    }
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    /* The drawer gets our arguments minus ours. */
    drawer_args = calloc(argc + 1, sizeof *drawer_args);
    int k = 0;
    drawer_args[k++] = "/bin/drawer";
    for (int i = 1; i < argc; i++) {
        if (!strncmp(argv[i], "clip=", 5))
            clip_text = argv[i] + 5;
        else if (strncmp(argv[i], "agent=", 6))
            drawer_args[k++] = argv[i];
    }
    drawer_args[k] = NULL;
    start_drawer(drawer_args);

    char dev[300];
    for (int tries = 0; find_port(dev, sizeof dev) < 0; tries++) {
        if (tries >= 100) {
            say("ryll: agent no port");
            check_drawer(1);
            for (;;)
                pause();
        }
        usleep(100 * 1000);
    }
    for (int tries = 0; (port_fd = open(dev, O_RDWR)) < 0; tries++) {
        if (tries >= 100) {
            say("ryll: error agent cannot open %s: %s", dev, strerror(errno));
            check_drawer(1);
            for (;;)
                pause();
        }
        usleep(100 * 1000);
    }
    announce(1);
    say("ryll: agent up (%s)", dev);

    static struct stream streams[2];
    uint8_t *chunk = malloc(65536 + 1);
    for (;;) {
        struct pollfd pfd = {port_fd, POLLIN, 0};
        int r = poll(&pfd, 1, 1000);
        check_drawer(0);
        if (r <= 0)
            continue;
        if (pfd.revents & (POLLHUP | POLLERR) && !(pfd.revents & POLLIN)) {
            usleep(200 * 1000); /* the host side is not connected */
            continue;
        }
        uint8_t head[CHUNK_HEADER_SIZE];
        if (read_all(head, sizeof head) < 0)
            continue;
        uint32_t port = get32(head), size = get32(head + 4);
        if (size > 65536) {
            say("ryll: error agent chunk of %u bytes", size);
            continue;
        }
        if (read_all(chunk, size) < 0)
            continue;
        if (port == VDP_CLIENT_PORT)
            feed(&streams[0], chunk, size, 1);
        else if (port == VDP_SERVER_PORT)
            feed(&streams[1], chunk, size, 0);
    }
}
