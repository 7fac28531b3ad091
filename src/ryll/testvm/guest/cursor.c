/*
 * cursor: the "cursor" and "heads" scenes of ryll's test VM (drawer execs /bin/cursor for them).
 *
 * Needs the qxl DRM driver (kernel command line "ryll.load=qxl"). Opens /dev/dri/card0, becomes
 * DRM master, finds a connected connector and a CRTC for it, scans out a dumb buffer with a known
 * picture (the mode from "mode=WxH", default 640x480), then sets a 64x64 ARGB8888 hardware cursor
 * with a hotspot (DRM_IOCTL_MODE_CURSOR2) and moves it. The qxl driver turns these into QXL
 * cursor commands (SET with a SPICE_CURSOR_TYPE_ALPHA shape, MOVE), which spice-server sends on
 * the cursor channel.
 *
 * scene=heads does the same scan-out (no cursor) on every DRM card: card0, card1, ... (one per QXL
 * device, each a SPICE display channel of its own), waiting for the first "heads=N" of them, with
 * a different picture on each (head_pixel()), head 0 in mode=WxH, head 1 in mode2=WxH (default
 * 800x600), further heads in their preferred mode; a mode the connector lacks falls back to the
 * preferred one.
 *
 * Only plain libc and <linux/ioctl.h> are used: the DRM uapi structures below are copied from the
 * kernel's include/uapi/drm/drm.h and drm_mode.h (a stable ABI), since Debian's linux-libc-dev
 * does not ship drm/ headers and libdrm is not needed for six ioctls.
 *
 * Pictures (pure functions, mirrored by tests/e2e/test_cursor.py and test_multihead.py):
 *   screen  pixel (x, y) = 0xFF000000 | (x & 0xFF) << 16 | (y & 0xFF) << 8 | ((x ^ y) & 0xFF)
 *   cursor  see cursor_pixel() below
 *   heads   see head_pixel() below
 *
 * Arguments: scene=cursor|heads (default cursor), mode=WxH, mode2=WxH, heads=N (others are
 * ignored). Markers on stdout (the serial console):
 *   cursor: "ryll: mode set WxH", "ryll: cursor set X Y hot HX HY", "ryll: cursor moved X Y";
 *   heads: "ryll: head N WxH drawn" per card, then "ryll: heads N" (how many);
 *   both: "ryll: idle", "ryll: error ...".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "guest.h"

/* ---- DRM uapi (include/uapi/drm/drm.h, drm_mode.h) --------------------------------------- */

struct drm_mode_modeinfo {
    uint32_t clock;
    uint16_t hdisplay, hsync_start, hsync_end, htotal, hskew;
    uint16_t vdisplay, vsync_start, vsync_end, vtotal, vscan;
    uint32_t vrefresh;
    uint32_t flags;
    uint32_t type;
    char name[32];
};

struct drm_mode_card_res {
    uint64_t fb_id_ptr, crtc_id_ptr, connector_id_ptr, encoder_id_ptr;
    uint32_t count_fbs, count_crtcs, count_connectors, count_encoders;
    uint32_t min_width, max_width, min_height, max_height;
};

struct drm_mode_crtc {
    uint64_t set_connectors_ptr;
    uint32_t count_connectors;
    uint32_t crtc_id, fb_id, x, y, gamma_size, mode_valid;
    struct drm_mode_modeinfo mode;
};

struct drm_mode_get_encoder {
    uint32_t encoder_id, encoder_type, crtc_id, possible_crtcs, possible_clones;
};

struct drm_mode_get_connector {
    uint64_t encoders_ptr, modes_ptr, props_ptr, prop_values_ptr;
    uint32_t count_modes, count_props, count_encoders;
    uint32_t encoder_id, connector_id, connector_type, connector_type_id;
    uint32_t connection, mm_width, mm_height, subpixel, pad;
};

struct drm_mode_fb_cmd {
    uint32_t fb_id, width, height, pitch, bpp, depth, handle;
};

struct drm_mode_fb_dirty_cmd {
    uint32_t fb_id, flags, color, num_clips;
    uint64_t clips_ptr;
};

struct drm_clip_rect {
    unsigned short x1, y1, x2, y2;
};

struct drm_mode_create_dumb {
    uint32_t height, width, bpp, flags, handle, pitch;
    uint64_t size;
};

struct drm_mode_map_dumb {
    uint32_t handle, pad;
    uint64_t offset;
};

struct drm_mode_cursor2 {
    uint32_t flags, crtc_id;
    int32_t x, y;
    uint32_t width, height, handle;
    int32_t hot_x, hot_y;
};

#define DRM_IOCTL_BASE 'd'
#define DRM_IO(nr) _IO(DRM_IOCTL_BASE, nr)
#define DRM_IOWR(nr, type) _IOWR(DRM_IOCTL_BASE, nr, type)
#define DRM_IOCTL_SET_MASTER DRM_IO(0x1e)
#define DRM_IOCTL_MODE_GETRESOURCES DRM_IOWR(0xA0, struct drm_mode_card_res)
#define DRM_IOCTL_MODE_SETCRTC DRM_IOWR(0xA2, struct drm_mode_crtc)
#define DRM_IOCTL_MODE_GETENCODER DRM_IOWR(0xA6, struct drm_mode_get_encoder)
#define DRM_IOCTL_MODE_GETCONNECTOR DRM_IOWR(0xA7, struct drm_mode_get_connector)
#define DRM_IOCTL_MODE_ADDFB DRM_IOWR(0xAE, struct drm_mode_fb_cmd)
#define DRM_IOCTL_MODE_DIRTYFB DRM_IOWR(0xB1, struct drm_mode_fb_dirty_cmd)
#define DRM_IOCTL_MODE_CREATE_DUMB DRM_IOWR(0xB2, struct drm_mode_create_dumb)
#define DRM_IOCTL_MODE_MAP_DUMB DRM_IOWR(0xB3, struct drm_mode_map_dumb)
#define DRM_IOCTL_MODE_CURSOR2 DRM_IOWR(0xBB, struct drm_mode_cursor2)
#define DRM_MODE_CURSOR_BO 0x01
#define DRM_MODE_CURSOR_MOVE 0x02
#define DRM_MODE_CONNECTED 1

static int xioctl(int fd, unsigned long req, void *arg)
{
    int r;
    do {
        r = ioctl(fd, req, arg);
    } while (r < 0 && (errno == EINTR || errno == EAGAIN));
    return r;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* ---- pictures ------------------------------------------------------------------------------ */

#define CURSOR_SIZE 64
#define HOT_X 5
#define HOT_Y 7

/* ARGB8888 (straight, not premultiplied): an opaque frame, a translucent inside, a transparent
 * bottom-right quarter. Transparent pixels are 0 so no convention can change them. */
static uint32_t cursor_pixel(int x, int y)
{
    if (x >= 48 && y >= 48)
        return 0;
    uint32_t a = (x < 4 || y < 4 || x >= 60 || y >= 60) ? 0xFF : (((x / 8 + y / 8) & 1) ? 0xFF : 0x80);
    uint32_t r = (uint32_t)(x * 4) & 0xFF, g = (uint32_t)(y * 4) & 0xFF;
    uint32_t b = (uint32_t)((x ^ y) * 4 + 3) & 0xFF;
    return a << 24 | r << 16 | g << 8 | b;
}

static uint32_t screen_pixel(int head, int x, int y, int W, int H)
{
    (void)head, (void)W, (void)H;
    return 0xFF000000u | (uint32_t)(x & 0xFF) << 16 | (uint32_t)(y & 0xFF) << 8 | (uint32_t)((x ^ y) & 0xFF);
}

/* scene=heads: head N's picture. A frame in the head's colour; above the middle, 40x30 tiles of
 * one colour each (hashed from the tile and the head: many colours, flat areas); below it on
 * the left a smooth gradient, on the right 16-pixel columns alternating between flat grey and
 * an x^y pattern (a function of x and y only, the same on every head). */
static uint32_t head_pixel(int head, int x, int y, int W, int H)
{
    static const uint32_t frame[4] = {0xE03020, 0x20C040, 0x3050E0, 0xD0C020};
    uint32_t h = (uint32_t)head;
    if (x < 6 || y < 6 || x >= W - 6 || y >= H - 6)
        return 0xFF000000u | frame[h & 3];
    if (y < H / 2) {
        uint32_t v = ((uint32_t)(x / 40) * 7 + (uint32_t)(y / 30) * 13 + h * 101) * 2654435761u;
        return 0xFF000000u | (v >> 8);
    }
    if (x < W / 2) {
        uint32_t r = (uint32_t)x * 255 / (uint32_t)(W / 2);
        uint32_t g = (uint32_t)(y - H / 2) * 255 / (uint32_t)(H - H / 2);
        return 0xFF000000u | r << 16 | g << 8 | ((h * 60 + 40) & 0xFF);
    }
    /* The same on every head where they overlap: GLZ can refer to another head's image. */
    if ((x / 16) & 1)
        return 0xFF000000u | (uint32_t)((x ^ y) & 0xFF) << 16 | (uint32_t)(x * 3 & 0xFF) << 8 | 0x40;
    return 0xFF808080u;
}

/* ---- DRM ----------------------------------------------------------------------------------- */

struct dumb {
    uint32_t handle, pitch;
    uint64_t size;
    uint8_t *map;
};

static void create_dumb(int fd, int w, int h, struct dumb *d)
{
    struct drm_mode_create_dumb c = {.height = (uint32_t)h, .width = (uint32_t)w, .bpp = 32};
    if (xioctl(fd, DRM_IOCTL_MODE_CREATE_DUMB, &c) < 0)
        fail("CREATE_DUMB %dx%d: %s", w, h, strerror(errno));
    struct drm_mode_map_dumb m = {.handle = c.handle};
    if (xioctl(fd, DRM_IOCTL_MODE_MAP_DUMB, &m) < 0)
        fail("MAP_DUMB: %s", strerror(errno));
    void *p = mmap(NULL, c.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)m.offset);
    if (p == MAP_FAILED)
        fail("mmap dumb: %s", strerror(errno));
    d->handle = c.handle;
    d->pitch = c.pitch;
    d->size = c.size;
    d->map = p;
}

/* Opens /dev/dri/cardN, waiting up to `wait_ms` for it (the module loads just before us; its
 * device node may take a moment). -1 if it is not there by then. */
static int open_card(int n, int wait_ms)
{
    char path[32];
    snprintf(path, sizeof path, "/dev/dri/card%d", n);
    for (int waited = 0;; waited += 100) {
        int fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd >= 0)
            return fd;
        if (waited >= wait_ms)
            return -1;
        sleep_ms(100);
    }
}

static int parse_mode(const char *s, int *w, int *h)
{
    return sscanf(s, "%dx%d", w, h) == 2 && *w > 0 && *h > 0 ? 0 : -1;
}

/* What set_up_screen() made: the CRTC that scans out a picture of W x H. */
struct screen {
    uint32_t crtc_id;
    int W, H;
};

/* On the DRM device `fd`: becomes master, takes the first connected connector and the wanted mode
 * on it (else its first, the preferred one), a CRTC for it, and scans out a dumb buffer holding
 * pixel(head, x, y, W, H) for every pixel, with a DIRTYFB over all of it. */
static struct screen set_up_screen(int fd, int want_w, int want_h, int head,
                                   uint32_t (*pixel)(int head, int x, int y, int W, int H))
{
    if (xioctl(fd, DRM_IOCTL_SET_MASTER, NULL) < 0)
        say("ryll: note SET_MASTER: %s", strerror(errno)); /* the first opener is master anyway */

    struct drm_mode_card_res res = {0};
    if (xioctl(fd, DRM_IOCTL_MODE_GETRESOURCES, &res) < 0)
        fail("GETRESOURCES: %s", strerror(errno));
    if (!res.count_connectors || !res.count_crtcs)
        fail("no connectors (%u) or CRTCs (%u)", res.count_connectors, res.count_crtcs);
    uint32_t *conns = calloc(res.count_connectors, 4), *crtcs = calloc(res.count_crtcs, 4);
    uint32_t *encs = calloc(res.count_encoders + 1, 4), *fbs = calloc(res.count_fbs + 1, 4);
    res.connector_id_ptr = (uintptr_t)conns;
    res.crtc_id_ptr = (uintptr_t)crtcs;
    res.encoder_id_ptr = (uintptr_t)encs;
    res.fb_id_ptr = (uintptr_t)fbs;
    if (xioctl(fd, DRM_IOCTL_MODE_GETRESOURCES, &res) < 0)
        fail("GETRESOURCES (2): %s", strerror(errno));

    /* The first connected connector, and the wanted mode on it (else its first mode). */
    struct drm_mode_get_connector conn;
    struct drm_mode_modeinfo mode_info;
    int found = 0;
    for (uint32_t i = 0; i < res.count_connectors && !found; i++) {
        memset(&conn, 0, sizeof conn);
        conn.connector_id = conns[i];
        if (xioctl(fd, DRM_IOCTL_MODE_GETCONNECTOR, &conn) < 0)
            continue;
        if (conn.connection != DRM_MODE_CONNECTED || !conn.count_modes)
            continue;
        struct drm_mode_modeinfo *modes = calloc(conn.count_modes, sizeof *modes);
        uint32_t *cencs = calloc(conn.count_encoders + 1, 4);
        uint32_t nmodes = conn.count_modes;
        conn.modes_ptr = (uintptr_t)modes;
        conn.encoders_ptr = (uintptr_t)cencs;
        conn.count_props = 0;
        conn.props_ptr = conn.prop_values_ptr = 0;
        if (xioctl(fd, DRM_IOCTL_MODE_GETCONNECTOR, &conn) < 0)
            fail("GETCONNECTOR (2): %s", strerror(errno));
        if (conn.count_modes > nmodes)
            conn.count_modes = nmodes;
        mode_info = modes[0];
        for (uint32_t m = 0; m < conn.count_modes; m++)
            if (modes[m].hdisplay == want_w && modes[m].vdisplay == want_h) {
                mode_info = modes[m];
                break;
            }
        if (!conn.encoder_id && conn.count_encoders)
            conn.encoder_id = cencs[0];
        found = 1;
    }
    if (!found)
        fail("no connected connector with modes");

    /* A CRTC: the encoder's current one, else the first it can drive. */
    uint32_t crtc_id = 0;
    struct drm_mode_get_encoder enc = {.encoder_id = conn.encoder_id};
    if (conn.encoder_id && xioctl(fd, DRM_IOCTL_MODE_GETENCODER, &enc) == 0) {
        crtc_id = enc.crtc_id;
        for (uint32_t i = 0; !crtc_id && i < res.count_crtcs; i++)
            if (enc.possible_crtcs & (1u << i))
                crtc_id = crtcs[i];
    }
    if (!crtc_id)
        crtc_id = crtcs[0];

    int W = mode_info.hdisplay, H = mode_info.vdisplay;
    struct dumb scr;
    create_dumb(fd, W, H, &scr);
    for (int y = 0; y < H; y++) {
        uint32_t *row = (uint32_t *)(scr.map + (size_t)y * scr.pitch);
        for (int x = 0; x < W; x++)
            row[x] = pixel(head, x, y, W, H);
    }
    struct drm_mode_fb_cmd fbc = {
        .width = (uint32_t)W, .height = (uint32_t)H, .pitch = scr.pitch, .bpp = 32, .depth = 24,
        .handle = scr.handle,
    };
    if (xioctl(fd, DRM_IOCTL_MODE_ADDFB, &fbc) < 0)
        fail("ADDFB: %s", strerror(errno));
    struct drm_mode_crtc crtc = {
        .set_connectors_ptr = (uintptr_t)&conn.connector_id, .count_connectors = 1,
        .crtc_id = crtc_id, .fb_id = fbc.fb_id, .mode_valid = 1, .mode = mode_info,
    };
    if (xioctl(fd, DRM_IOCTL_MODE_SETCRTC, &crtc) < 0)
        fail("SETCRTC %dx%d: %s", W, H, strerror(errno));
    struct drm_clip_rect clip = {0, 0, (unsigned short)W, (unsigned short)H};
    struct drm_mode_fb_dirty_cmd dirty = {
        .fb_id = fbc.fb_id, .num_clips = 1, .clips_ptr = (uintptr_t)&clip,
    };
    if (xioctl(fd, DRM_IOCTL_MODE_DIRTYFB, &dirty) < 0 && errno != ENOSYS)
        say("ryll: note DIRTYFB: %s", strerror(errno));
    return (struct screen){crtc_id, W, H};
}

/* scene=heads: every DRM card (card0, card1, ... at least `heads` of them) gets its own picture,
 * head_pixel(N, ...), in mode=WxH (head 0), mode2=WxH (head 1) or its preferred mode. */
static void heads_scene(int heads, int w0, int h0, int w1, int h1)
{
    int n = 0;
    for (;; n++) {
        /* The cards the test asked for may still be probing; further ones are there or not. */
        int fd = open_card(n, n < heads ? 10000 : 0);
        if (fd < 0) {
            if (n < heads)
                fail("open /dev/dri/card%d: %s (is ryll.load=qxl on the kernel command line?)", n,
                     strerror(errno));
            break;
        }
        int w = n == 0 ? w0 : n == 1 ? w1 : 0, h = n == 0 ? h0 : n == 1 ? h1 : 0;
        struct screen s = set_up_screen(fd, w, h, n, head_pixel);
        say("ryll: head %d %dx%d drawn", n, s.W, s.H);
        /* fd stays open: this process stays DRM master of every card while it idles. */
    }
    say("ryll: heads %d", n);
    idle_forever();
}

int main(int argc, char **argv)
{
    const char *mode = "640x480", *mode2 = "800x600", *scene = "cursor";
    int heads = 1; /* scene=heads: how many cards to wait for */
    for (int i = 1; i < argc; i++) {
        if (!strncmp(argv[i], "mode=", 5))
            mode = argv[i] + 5;
        else if (!strncmp(argv[i], "mode2=", 6))
            mode2 = argv[i] + 6;
        else if (!strncmp(argv[i], "scene=", 6))
            scene = argv[i] + 6;
        else if (!strncmp(argv[i], "heads=", 6))
            heads = atoi(argv[i] + 6);
    }
    int want_w, want_h, w2, h2;
    if (parse_mode(mode, &want_w, &want_h) < 0)
        fail("bad mode '%s' (want WxH)", mode);
    if (parse_mode(mode2, &w2, &h2) < 0)
        fail("bad mode2 '%s' (want WxH)", mode2);
    if (!strcmp(scene, "heads"))
        heads_scene(heads, want_w, want_h, w2, h2);

    int fd = open_card(0, 10000);
    if (fd < 0)
        fail("open /dev/dri/card0: %s (is ryll.load=qxl on the kernel command line?)",
             strerror(errno));
    struct screen scr = set_up_screen(fd, want_w, want_h, 0, screen_pixel);
    uint32_t crtc_id = scr.crtc_id;
    say("ryll: mode set %dx%d", scr.W, scr.H);

    struct dumb cur;
    create_dumb(fd, CURSOR_SIZE, CURSOR_SIZE, &cur);
    for (int y = 0; y < CURSOR_SIZE; y++) {
        uint32_t *row = (uint32_t *)(cur.map + (size_t)y * cur.pitch);
        for (int x = 0; x < CURSOR_SIZE; x++)
            row[x] = cursor_pixel(x, y);
    }
    sleep_ms(500);
    struct drm_mode_cursor2 c2 = {
        .flags = DRM_MODE_CURSOR_BO | DRM_MODE_CURSOR_MOVE, .crtc_id = crtc_id, .x = 100, .y = 80,
        .width = CURSOR_SIZE, .height = CURSOR_SIZE, .handle = cur.handle, .hot_x = HOT_X,
        .hot_y = HOT_Y,
    };
    if (xioctl(fd, DRM_IOCTL_MODE_CURSOR2, &c2) < 0)
        fail("CURSOR2 set: %s", strerror(errno));
    say("ryll: cursor set %d %d hot %d %d", c2.x, c2.y, HOT_X, HOT_Y);

    static const int moves[][2] = {{200, 150}, {300, 220}, {320, 240}};
    for (size_t i = 0; i < sizeof moves / sizeof moves[0]; i++) {
        sleep_ms(500);
        struct drm_mode_cursor2 mv = {
            .flags = DRM_MODE_CURSOR_MOVE, .crtc_id = crtc_id, .x = moves[i][0], .y = moves[i][1],
        };
        if (xioctl(fd, DRM_IOCTL_MODE_CURSOR2, &mv) < 0)
            fail("CURSOR2 move: %s", strerror(errno));
        say("ryll: cursor moved %d %d", mv.x, mv.y);
    }
    idle_forever();
    return 0;
}
