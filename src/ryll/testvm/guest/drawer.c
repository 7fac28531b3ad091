/*
 * drawer: the workload of ryll's test VM.
 *
 * Runs as root inside a tiny initramfs, sets a display mode through the Bochs VBE "dispi"
 * interface of QEMU's emulated VGA (std, qxl and virtio-vga all have it) and draws into the
 * linear framebuffer (BAR0 of the VGA PCI device, mapped through sysfs). Everything drawn is a
 * pure function of the mode (and, for the animation, of the frame number), so a test can compare
 * what a SPICE client shows with QEMU's own screendump or with another run.
 *
 * Arguments (the /init script passes every "ryll.KEY=VALUE" of the kernel command line as
 * "KEY=VALUE"):
 *   scene=static|animate|modes|cursor|heads   what to do (default static; cursor and heads:
 *                                exec /bin/cursor)
 *   mode=WxH                     first mode (default 640x480)
 *   mode2=WxH                    second mode of the "modes" scene (default 1024x768)
 *   hold=S                       seconds before the "modes" scene switches (default 3)
 *   seconds=S                    the animation stops after S*20 frames (default: never)
 *   fps=N                        animation rate (default 20)
 *   full=1                       the animation redraws the whole screen every frame (the
 *                                picture scrolls left under the box and the band), the
 *                                full-screen load of the session benchmark
 * scene=input shows the static picture and reports the keyboard and pointer (see input_loop).
 * Unknown arguments are ignored.
 *
 * Markers on stdout (the serial console):
 *   "ryll: mode set WxH", "ryll: frame N", "ryll: idle", "ryll: error ...".
 *
 * Build: gcc -static -O2 -s -o drawer drawer.c
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/input.h>
#include <poll.h>
#include <sys/io.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "guest.h"

/* ------------------------------------------------------------------------------------------ */
/* Bochs VBE dispi                                                                              */

#define VBE_INDEX_PORT 0x1CE
#define VBE_DATA_PORT 0x1CF
#define VBE_ID 0
#define VBE_XRES 1
#define VBE_YRES 2
#define VBE_BPP 3
#define VBE_ENABLE 4
#define VBE_BANK 5
#define VBE_VIRT_WIDTH 6
#define VBE_VIRT_HEIGHT 7
#define VBE_X_OFFSET 8
#define VBE_Y_OFFSET 9
#define VBE_ENABLED 0x01
#define VBE_LFB_ENABLED 0x40

static void vbe_write(uint16_t index, uint16_t value)
{
    outw(index, VBE_INDEX_PORT);
    outw(value, VBE_DATA_PORT);
}

static uint16_t vbe_read(uint16_t index)
{
    outw(index, VBE_INDEX_PORT);
    return inw(VBE_DATA_PORT);
}

static uint32_t *fb;     /* the mapped linear framebuffer */
static size_t fb_size;   /* its size in bytes (BAR0) */
static uint32_t *canvas; /* off-screen picture of the current mode */
static int W, H;         /* current mode */

static void map_framebuffer(void)
{
    DIR *d = opendir("/sys/bus/pci/devices");
    if (!d)
        fail("cannot open /sys/bus/pci/devices: %s", strerror(errno));
    struct dirent *e;
    char path[512], cls[32];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/class", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        int ok = fgets(cls, sizeof cls, f) != NULL;
        fclose(f);
        if (!ok || strtoul(cls, NULL, 16) != 0x030000)
            continue;
        snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/resource0", e->d_name);
        int fd = open(path, O_RDWR | O_SYNC);
        if (fd < 0)
            fail("cannot open %s: %s", path, strerror(errno));
        struct stat st;
        if (fstat(fd, &st) < 0 || st.st_size <= 0)
            fail("cannot size %s", path);
        fb_size = (size_t)st.st_size;
        void *p = mmap(NULL, fb_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            fail("cannot mmap %s: %s", path, strerror(errno));
        close(fd);
        closedir(d);
        fb = p;
        return;
    }
    closedir(d);
    fail("no VGA PCI device (class 0x030000) found");
}

static void set_mode(int w, int h)
{
    if (w < 64 || h < 64 || w > 4096 || h > 4096 || (w % 8) != 0)
        fail("bad mode %dx%d", w, h);
    if ((size_t)w * h * 4 > fb_size)
        fail("mode %dx%d needs %zu bytes, framebuffer has %zu", w, h, (size_t)w * h * 4, fb_size);
    uint16_t id = vbe_read(VBE_ID);
    if (id < 0xB0C0 || id > 0xB0CF)
        fail("no Bochs VBE dispi interface (id 0x%04x)", id);
    vbe_write(VBE_ENABLE, 0);
    vbe_write(VBE_XRES, (uint16_t)w);
    vbe_write(VBE_YRES, (uint16_t)h);
    vbe_write(VBE_BPP, 32);
    vbe_write(VBE_BANK, 0);
    vbe_write(VBE_ENABLE, VBE_ENABLED | VBE_LFB_ENABLED);
    vbe_write(VBE_VIRT_WIDTH, (uint16_t)w);
    vbe_write(VBE_X_OFFSET, 0);
    vbe_write(VBE_Y_OFFSET, 0);
    /* Unblank: reset the attribute controller flip-flop, then set PAS (palette address source). */
    (void)inb(0x3DA);
    outb(0x20, 0x3C0);
    int rw = vbe_read(VBE_XRES), rh = vbe_read(VBE_YRES), rb = vbe_read(VBE_BPP);
    int vw = vbe_read(VBE_VIRT_WIDTH);
    if (rw != w || rh != h || rb != 32 || vw != w)
        fail("mode %dx%d refused (device reports %dx%dx%d, stride %d)", w, h, rw, rh, rb, vw);
    free(canvas);
    canvas = malloc((size_t)w * h * 4);
    if (!canvas)
        fail("out of memory for a %dx%d canvas", w, h);
    W = w;
    H = h;
    say("ryll: mode set %dx%d", w, h);
}

/* ------------------------------------------------------------------------------------------ */
/* Drawing on the canvas (0x00RRGGBB, the dispi 32 bpp layout)                                  */

#define RGB(r, g, b) ((uint32_t)(((r) & 255) << 16 | ((g) & 255) << 8 | ((b) & 255)))

static void fill(uint32_t *buf, int x0, int y0, int x1, int y1, uint32_t c)
{
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > W) x1 = W;
    if (y1 > H) y1 = H;
    for (int y = y0; y < y1; y++) {
        uint32_t *row = buf + (size_t)y * W;
        for (int x = x0; x < x1; x++)
            row[x] = c;
    }
}

/* 5x7 font: seven rows of five bits, most significant bit leftmost. */
struct glyph {
    char ch;
    uint8_t rows[7];
};
static const struct glyph FONT[] = {
    {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}}, {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}}, {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
    {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}}, {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
    {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}}, {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}}, {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
    {'A', {0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11}}, {'B', {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E}},
    {'C', {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}}, {'D', {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C}},
    {'E', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}}, {'F', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10}},
    {'G', {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}}, {'H', {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}},
    {'I', {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}}, {'J', {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C}},
    {'K', {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}}, {'L', {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F}},
    {'M', {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}}, {'N', {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}},
    {'O', {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}}, {'P', {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10}},
    {'Q', {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}}, {'R', {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11}},
    {'S', {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}}, {'T', {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}},
    {'U', {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}}, {'V', {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04}},
    {'W', {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}}, {'X', {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11}},
    {'Y', {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04}}, {'Z', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F}},
    {':', {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00}}, {'.', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}},
    {'-', {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}}, {'/', {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00}},
    {'=', {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00}}, {'#', {0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A}},
};

static const uint8_t *glyph_rows(char ch)
{
    if (ch >= 'a' && ch <= 'z')
        ch = (char)(ch - 'a' + 'A');
    for (size_t i = 0; i < sizeof FONT / sizeof FONT[0]; i++)
        if (FONT[i].ch == ch)
            return FONT[i].rows;
    return NULL; /* space and anything unknown: blank */
}

/* Draws text with its top-left corner at (x, y), each font pixel scale x scale; returns the x
 * after the last character. */
static int text(uint32_t *buf, int x, int y, int scale, uint32_t c, const char *s)
{
    for (; *s; s++) {
        const uint8_t *rows = glyph_rows(*s);
        if (rows)
            for (int r = 0; r < 7; r++)
                for (int b = 0; b < 5; b++)
                    if (rows[r] & (0x10 >> b))
                        fill(buf, x + b * scale, y + r * scale, x + (b + 1) * scale,
                             y + (r + 1) * scale, c);
        x += 6 * scale;
    }
    return x;
}

/* Integer HSV to RGB: h in [0, 1536), s and v in [0, 255]. */
static uint32_t hsv(int h, int s, int v)
{
    int sector = h >> 8, f = h & 255;
    int p = v * (255 - s) / 255;
    int q = v * (255 - s * f / 255) / 255;
    int t = v * (255 - s * (255 - f) / 255) / 255;
    switch (sector % 6) {
    case 0: return RGB(v, t, p);
    case 1: return RGB(q, v, p);
    case 2: return RGB(p, v, t);
    case 3: return RGB(p, q, v);
    case 4: return RGB(t, p, v);
    default: return RGB(v, p, q);
    }
}

/* The static picture, a function of (W, H) only (the same in every scene). */
static void draw_picture(uint32_t *buf)
{
    /* Background. */
    fill(buf, 0, 0, W, H, RGB(32, 32, 40));

    /* Colour bars: the top eighth. */
    static const uint32_t bars[8] = {
        RGB(255, 255, 255), RGB(255, 255, 0), RGB(0, 255, 255), RGB(0, 255, 0),
        RGB(255, 0, 255),   RGB(255, 0, 0),   RGB(0, 0, 255),   RGB(0, 0, 0),
    };
    int bars_h = H / 8;
    for (int i = 0; i < 8; i++)
        fill(buf, W * i / 8, 0, W * (i + 1) / 8, bars_h, bars[i]);

    /* Four horizontal ramps (red, green, blue, grey), the next eighth. */
    int ramp_h = H / 32;
    for (int k = 0; k < 4; k++) {
        int y0 = bars_h + k * ramp_h;
        for (int y = y0; y < y0 + ramp_h; y++)
            for (int x = 0; x < W; x++) {
                int v = x * 255 / (W - 1);
                buf[(size_t)y * W + x] = k == 0 ? RGB(v, 0, 0) : k == 1 ? RGB(0, v, 0)
                                       : k == 2 ? RGB(0, 0, v) : RGB(v, v, v);
            }
    }

    int top = bars_h + 4 * ramp_h; /* = H/4 give or take */
    int mid = H * 5 / 8;

    /* Left half of the middle band: hue across, value down (thousands of colours). */
    int hx0 = W / 32, hx1 = W / 2 - W / 32, hy0 = top + H / 32, hy1 = mid - H / 32;
    for (int y = hy0; y < hy1; y++)
        for (int x = hx0; x < hx1; x++) {
            int h = (x - hx0) * 1535 / (hx1 - hx0);
            int v = 255 - (y - hy0) * 200 / (hy1 - hy0);
            int s = 128 + (y - hy0) * 127 / (hy1 - hy0);
            buf[(size_t)y * W + x] = hsv(h, s, v);
        }

    /* Right half, upper part: an 8-pixel checkerboard. */
    int cx0 = W / 2 + W / 32, cx1 = W - W / 32, cy0 = top + H / 32, cy1 = top + (mid - top) / 2;
    for (int y = cy0; y < cy1; y++)
        for (int x = cx0; x < cx1; x++)
            buf[(size_t)y * W + x] = (((x - cx0) >> 3) + ((y - cy0) >> 3)) & 1
                                         ? RGB(250, 250, 250) : RGB(10, 10, 10);

    /* Right half, lower part: fine detail (1-pixel checker, 1-pixel stripes, 2-pixel stripes). */
    int fy0 = cy1 + H / 64, fy1 = mid - H / 32, fw = (cx1 - cx0) / 3;
    for (int y = fy0; y < fy1; y++)
        for (int x = cx0; x < cx1; x++) {
            uint32_t c;
            if (x < cx0 + fw)
                c = ((x + y) & 1) ? RGB(255, 255, 255) : RGB(0, 0, 0);
            else if (x < cx0 + 2 * fw)
                c = (x & 1) ? RGB(255, 0, 0) : RGB(0, 255, 255);
            else
                c = ((y >> 1) & 1) ? RGB(255, 255, 0) : RGB(0, 0, 160);
            buf[(size_t)y * W + x] = c;
        }

    /* Bottom band, right: overlapping flat rectangles. */
    int rx0 = W / 2 + W / 32, rx1 = W - W / 32, ry0 = mid + H / 32, ry1 = H - H / 32;
    int rw = rx1 - rx0, rh = ry1 - ry0;
    fill(buf, rx0, ry0, rx1, ry1, RGB(70, 90, 110));
    fill(buf, rx0 + rw / 10, ry0 + rh / 8, rx0 + rw / 2, ry0 + rh / 2, RGB(220, 120, 30));
    fill(buf, rx0 + rw / 3, ry0 + rh / 3, rx0 + rw * 3 / 4, ry0 + rh * 3 / 4, RGB(40, 160, 90));
    fill(buf, rx0 + rw / 2, ry0 + rh / 6, rx0 + rw * 9 / 10, ry0 + rh / 2, RGB(150, 60, 200));
    fill(buf, rx0 + rw / 5, ry0 + rh * 3 / 5, rx0 + rw / 2, ry0 + rh * 9 / 10, RGB(240, 240, 200));
    fill(buf, rx0 + rw * 3 / 5, ry0 + rh * 2 / 3, rx0 + rw * 19 / 20, ry0 + rh * 14 / 15,
         RGB(200, 30, 60));

    /* Bottom band, left: text. */
    char line[80];
    int tx = W / 32, ty = mid + H / 32;
    int big = W >= 1024 ? 3 : 2;
    text(buf, tx, ty, big, RGB(255, 255, 255), "RYLL TEST VM");
    ty += 9 * big;
    snprintf(line, sizeof line, "MODE %dX%d", W, H);
    text(buf, tx, ty, 1, RGB(255, 220, 0), line);
    ty += 10;
    static const char *lines[] = {
        "THE QUICK BROWN FOX JUMPS", "OVER THE LAZY DOG.", "0123456789 -/=:#",
        "PACK MY BOX WITH FIVE", "DOZEN LIQUOR JUGS.",
    };
    static const uint32_t colours[] = {
        RGB(200, 200, 200), RGB(120, 200, 255), RGB(255, 140, 140), RGB(160, 255, 160),
        RGB(255, 200, 255),
    };
    for (int i = 0; i < 5 && ty + 8 < H - H / 32; i++, ty += 9)
        text(buf, tx, ty, 1, colours[i], lines[i]);

    /* Corner markers (orientation): red top-left, green top-right, blue bottom-left, white
     * bottom-right, each 4x4, inside a 1-pixel frame. */
    fill(buf, 0, 0, W, 1, RGB(255, 128, 0));
    fill(buf, 0, H - 1, W, H, RGB(255, 128, 0));
    fill(buf, 0, 0, 1, H, RGB(255, 128, 0));
    fill(buf, W - 1, 0, W, H, RGB(255, 128, 0));
    fill(buf, 1, 1, 5, 5, RGB(255, 0, 0));
    fill(buf, W - 5, 1, W - 1, 5, RGB(0, 255, 0));
    fill(buf, 1, H - 5, 5, H - 1, RGB(0, 0, 255));
    fill(buf, W - 5, H - 5, W - 1, H - 1, RGB(255, 255, 255));
}

/* Copies a rectangle of the canvas (or of another W x H buffer) to the framebuffer. */
static void blit(const uint32_t *src, int x0, int y0, int x1, int y1)
{
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > W) x1 = W;
    if (y1 > H) y1 = H;
    if (x1 <= x0 || y1 <= y0)
        return;
    for (int y = y0; y < y1; y++)
        memcpy(fb + (size_t)y * W + x0, src + (size_t)y * W + x0, (size_t)(x1 - x0) * 4);
}

static void show_static(int w, int h)
{
    set_mode(w, h);
    draw_picture(canvas);
    blit(canvas, 0, 0, W, H);
    say("ryll: frame 1");
}

/* ------------------------------------------------------------------------------------------ */
/* Animation: a bouncing box and a band of scrolling bars over the static picture.             */

static int bounce(int t, int span)
{
    /* Triangle wave in [0, span]. */
    if (span <= 0)
        return 0;
    int p = t % (2 * span);
    return p <= span ? p : 2 * span - p;
}

static void animate(int w, int h, int fps, long max_frames, int full)
{
    set_mode(w, h);
    uint32_t *bg = malloc((size_t)W * H * 4);
    if (!bg)
        fail("out of memory for the background");
    draw_picture(bg);
    memcpy(canvas, bg, (size_t)W * H * 4);
    blit(canvas, 0, 0, W, H);

    int bw = W / 8, bh = H / 8;                    /* the box */
    int band_y0 = H - H / 10 - H / 64, band_y1 = H - H / 64; /* the scrolling band */
    int period = W / 8;                            /* bar pattern period in pixels */
    int ox = -1, oy = -1;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    long step_ns = 1000000000L / (fps > 0 ? fps : 20);

    for (long n = 1; max_frames < 0 || n <= max_frames; n++) {
        /* Frame n is a function of n only. */
        int x = bounce((int)(n * 7), W - bw), y = bounce((int)(n * 5), band_y0 - bh);
        /* Restore the background under the old box (all of it, scrolled, for a full-screen
         * animation), then draw the band and the new box. */
        if (full) {
            int sx = (int)((n * 4) % W);
            for (int yy = 0; yy < H; yy++) {
                memcpy(canvas + (size_t)yy * W, bg + (size_t)yy * W + sx, (size_t)(W - sx) * 4);
                memcpy(canvas + (size_t)yy * W + (W - sx), bg + (size_t)yy * W, (size_t)sx * 4);
            }
        } else if (ox >= 0)
            for (int yy = oy; yy < oy + bh; yy++)
                memcpy(canvas + (size_t)yy * W + ox, bg + (size_t)yy * W + ox, (size_t)bw * 4);
        int shift = (int)((n * 4) % period);
        for (int yy = band_y0; yy < band_y1; yy++)
            for (int xx = 0; xx < W; xx++) {
                int p = (xx + shift) % period;
                canvas[(size_t)yy * W + xx] =
                    hsv(p * 1535 / period, 255, 255 - (yy - band_y0) * 120 / (band_y1 - band_y0));
            }
        for (int yy = y; yy < y + bh; yy++)
            for (int xx = x; xx < x + bw; xx++) {
                int edge = xx < x + 3 || xx >= x + bw - 3 || yy < y + 3 || yy >= y + bh - 3;
                canvas[(size_t)yy * W + xx] =
                    edge ? RGB(255, 255, 255)
                         : RGB((xx - x) * 255 / bw, (yy - y) * 255 / bh, (int)((n * 3) & 255));
            }
        char num[24];
        snprintf(num, sizeof num, "%ld", n);
        text(canvas, x + 6, y + 6, 2, RGB(0, 0, 0), num);

        /* Push the changed areas. */
        if (full) {
            blit(canvas, 0, 0, W, H);
        } else {
            if (ox >= 0)
                blit(canvas, ox, oy, ox + bw, oy + bh);
            blit(canvas, 0, band_y0, W, band_y1);
            blit(canvas, x, y, x + bw, y + bh);
        }
        ox = x;
        oy = y;

        if (n == 1 || n % 20 == 0 || n == max_frames)
            say("ryll: frame %ld", n);

        next.tv_nsec += step_ns;
        while (next.tv_nsec >= 1000000000L) {
            next.tv_nsec -= 1000000000L;
            next.tv_sec++;
        }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > next.tv_sec + 1)
            next = now; /* far behind (a paused VM): do not race to catch up */
        else
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    }
    free(bg);
}

/* ------------------------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------------------------ */
/* Input: the static picture, then every kernel input device (/dev/input/event*, evdev) is    */
/* read and reported on the serial port:                                                       */
/*   "ryll: input device eventN abs=A rel=R name=NAME"  a device was opened                   */
/*   "ryll: input ready"                                  the first scan is done               */
/*   "ryll: key CODE down|up"                             a key (Linux keycode = set 1 < 0x59) */
/*   "ryll: text CHARS"                                   what the keys typed so far (US       */
/*                                                        layout, shift and caps lock; \n, \t  */
/*                                                        and \\ escaped; BackSpace erases)    */
/*   "ryll: pointer abs X Y"                              a tablet position, in screen pixels  */
/*   "ryll: pointer rel DX DY"                            a relative motion (one per report)   */
/*   "ryll: button N down|up"                             1 left, 2 middle, 3 right            */
/*   "ryll: wheel N"                                      a wheel step                         */
/* Each key paints a square in a colour of its code, the pointer a small white mark, so input  */
/* shows on the display (the latency test times that). Devices are grabbed (EVIOCGRAB), so the  */
/* kernel console never sees the keys (no Ctrl+Alt+Del reboot).                                */

#define MAX_INPUT_DEVS 16
#define TEXT_KEEP 150

struct input_dev {
    int fd;
    char node[32];
    int abs;
    int min[2], max[2];
};

static struct input_dev in_devs[MAX_INPUT_DEVS];
static int n_in_devs;

static void scan_input_devices(void)
{
    DIR *d = opendir("/dev/input");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n_in_devs < MAX_INPUT_DEVS) {
        if (strncmp(e->d_name, "event", 5) || strlen(e->d_name) >= sizeof in_devs[0].node)
            continue;
        int known = 0;
        for (int i = 0; i < n_in_devs; i++)
            known |= !strcmp(in_devs[i].node, e->d_name);
        if (known)
            continue;
        char path[64], name[96] = "?";
        snprintf(path, sizeof path, "/dev/input/%s", e->d_name);
        int fd = open(path, O_RDONLY | O_NONBLOCK);
        if (fd < 0)
            continue;
        ioctl(fd, EVIOCGNAME(sizeof name - 1), name);
        unsigned long bits = 0;
        ioctl(fd, EVIOCGBIT(0, sizeof bits), &bits);
        ioctl(fd, EVIOCGRAB, 1);
        struct input_dev *dv = &in_devs[n_in_devs++];
        memset(dv, 0, sizeof *dv);
        dv->fd = fd;
        snprintf(dv->node, sizeof dv->node, "%s", e->d_name);
        dv->abs = (bits >> EV_ABS) & 1;
        for (int a = 0; a < 2 && dv->abs; a++) {
            struct input_absinfo ai;
            if (ioctl(fd, EVIOCGABS(a == 0 ? ABS_X : ABS_Y), &ai) == 0 && ai.maximum > ai.minimum) {
                dv->min[a] = ai.minimum;
                dv->max[a] = ai.maximum;
            } else {
                dv->max[a] = 0x7fff;
            }
        }
        say("ryll: input device %s abs=%d rel=%d name=%s", dv->node, dv->abs,
            (int)((bits >> EV_REL) & 1), name);
    }
    closedir(d);
}

/* US layout, Linux keycodes 0..57. */
static const char KEYS_LO[58] = "\0\0" "1234567890-=" "\0\t" "qwertyuiop[]" "\n\0"
                                "asdfghjkl;'`" "\0\\" "zxcvbnm,./" "\0*\0 ";
static const char KEYS_HI[58] = "\0\0" "!@#$%^&*()_+" "\0\t" "QWERTYUIOP{}" "\n\0"
                                "ASDFGHJKL:\"~" "\0|" "ZXCVBNM<>?" "\0*\0 ";

static char typed[TEXT_KEEP + 1];
static int n_typed, shift_l, shift_r, caps;

static void report_text(void)
{
    char esc[2 * TEXT_KEEP + 1];
    int n = 0;
    for (int i = 0; i < n_typed; i++) {
        char c = typed[i];
        if (c == '\n' || c == '\t' || c == '\\') {
            esc[n++] = '\\';
            esc[n++] = c == '\n' ? 'n' : c == '\t' ? 't' : '\\';
        } else {
            esc[n++] = c;
        }
    }
    esc[n] = 0;
    say("ryll: text %s", esc);
}

static void on_key(int code, int down)
{
    say("ryll: key %d %s", code, down ? "down" : "up");
    if (code == KEY_LEFTSHIFT)
        shift_l = down;
    else if (code == KEY_RIGHTSHIFT)
        shift_r = down;
    if (!down)
        return;
    /* A square in the middle band's lower left, its colour from the key and a press count (a
     * repaint in the same colour would change no pixel, and QEMU sends no update for that). */
    static int presses;
    presses++;
    int s = W / 20, x0 = W / 32 + (code % 8) * (s + 2), y0 = H * 5 / 8 - s - 4;
    fill(canvas, x0, y0, x0 + s, y0 + s, hsv((code * 97 + presses * 211) % 1536, 255, 255));
    blit(canvas, x0, y0, x0 + s, y0 + s);
    if (code == KEY_CAPSLOCK) {
        caps = !caps;
        return;
    }
    if (code == KEY_BACKSPACE) {
        if (n_typed > 0)
            n_typed--;
        report_text();
        return;
    }
    if (code >= 58)
        return;
    int shift = shift_l || shift_r;
    char c = shift ? KEYS_HI[code] : KEYS_LO[code];
    if (caps && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
        c = (char)(c ^ 0x20);
    if (!c)
        return;
    if (n_typed == TEXT_KEEP) {
        memmove(typed, typed + 1, TEXT_KEEP - 1);
        n_typed--;
    }
    typed[n_typed++] = c;
    report_text();
}

static int mark_x = -1, mark_y = -1;

static void draw_pointer(const uint32_t *bg, int x, int y)
{
    if (mark_x >= 0) {
        for (int yy = mark_y - 3; yy <= mark_y + 3; yy++)
            if (yy >= 0 && yy < H)
                for (int xx = mark_x - 3; xx <= mark_x + 3; xx++)
                    if (xx >= 0 && xx < W)
                        canvas[(size_t)yy * W + xx] = bg[(size_t)yy * W + xx];
        blit(canvas, mark_x - 3, mark_y - 3, mark_x + 4, mark_y + 4);
    }
    fill(canvas, x - 3, y, x + 4, y + 1, RGB(255, 255, 255));
    fill(canvas, x, y - 3, x + 1, y + 4, RGB(255, 255, 255));
    blit(canvas, x - 3, y - 3, x + 4, y + 4);
    mark_x = x;
    mark_y = y;
}

static int scale_abs(int v, int min, int max, int size)
{
    long r = ((long)(v - min) * size + (max - min) / 2) / (max - min);
    return r < 0 ? 0 : r >= size ? size - 1 : (int)r;
}

static void input_loop(int w, int h)
{
    show_static(w, h);
    uint32_t *bg = malloc((size_t)W * H * 4);
    if (!bg)
        fail("out of memory for the background");
    memcpy(bg, canvas, (size_t)W * H * 4);
    scan_input_devices();
    say("ryll: input ready");
    int px = W / 2, py = H / 2, rdx = 0, rdy = 0, ax = -1, ay = -1, abs_dirty = 0;
    struct input_dev *abs_dev = NULL;
    struct timespec last_scan;
    clock_gettime(CLOCK_MONOTONIC, &last_scan);
    for (;;) {
        struct pollfd pfd[MAX_INPUT_DEVS];
        for (int i = 0; i < n_in_devs; i++) {
            pfd[i].fd = in_devs[i].fd;
            pfd[i].events = POLLIN;
            pfd[i].revents = 0;
        }
        poll(pfd, (nfds_t)n_in_devs, 500);
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - last_scan.tv_sec >= 1) {
            scan_input_devices(); /* a USB tablet shows up after the first scan */
            last_scan = now;
        }
        for (int i = 0; i < n_in_devs; i++) {
            if (!(pfd[i].revents & POLLIN))
                continue;
            struct input_event ev[64];
            ssize_t n = read(in_devs[i].fd, ev, sizeof ev);
            for (int k = 0; k < n / (ssize_t)sizeof ev[0]; k++) {
                struct input_event *e = &ev[k];
                if (e->type == EV_KEY && e->value != 2) {
                    if (e->code == BTN_LEFT || e->code == BTN_RIGHT || e->code == BTN_MIDDLE) {
                        int b = e->code == BTN_LEFT ? 1 : e->code == BTN_MIDDLE ? 2 : 3;
                        say("ryll: button %d %s", b, e->value ? "down" : "up");
                    } else if (e->code < BTN_MISC) {
                        on_key(e->code, e->value != 0);
                    }
                } else if (e->type == EV_REL) {
                    if (e->code == REL_X)
                        rdx += e->value;
                    else if (e->code == REL_Y)
                        rdy += e->value;
                    else if (e->code == REL_WHEEL)
                        say("ryll: wheel %d", e->value);
                } else if (e->type == EV_ABS && (e->code == ABS_X || e->code == ABS_Y)) {
                    abs_dev = &in_devs[i];
                    if (e->code == ABS_X)
                        ax = e->value;
                    else
                        ay = e->value;
                    abs_dirty = 1;
                } else if (e->type == EV_SYN && e->code == SYN_REPORT) {
                    if (rdx || rdy) {
                        say("ryll: pointer rel %d %d", rdx, rdy);
                        px += rdx;
                        py += rdy;
                        px = px < 0 ? 0 : px >= W ? W - 1 : px;
                        py = py < 0 ? 0 : py >= H ? H - 1 : py;
                        draw_pointer(bg, px, py);
                        rdx = rdy = 0;
                    }
                    if (abs_dirty && abs_dev && ax >= 0 && ay >= 0) {
                        int x = scale_abs(ax, abs_dev->min[0], abs_dev->max[0], W);
                        int y = scale_abs(ay, abs_dev->min[1], abs_dev->max[1], H);
                        say("ryll: pointer abs %d %d", x, y);
                        draw_pointer(bg, x, y);
                        abs_dirty = 0;
                    }
                }
            }
        }
    }
}

static int parse_mode(const char *s, int *w, int *h)
{
    char *end;
    long a = strtol(s, &end, 10);
    if (end == s || (*end != 'x' && *end != 'X'))
        return -1;
    const char *t = end + 1;
    long b = strtol(t, &end, 10);
    if (end == t || *end)
        return -1;
    *w = (int)a;
    *h = (int)b;
    return 0;
}

int main(int argc, char **argv)
{
    const char *scene_name = "static", *mode = "640x480", *mode2 = "1024x768";
    int hold = 3, fps = 20, full = 0;
    long seconds = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strncmp(a, "scene=", 6))
            scene_name = a + 6;
        else if (!strncmp(a, "mode=", 5))
            mode = a + 5;
        else if (!strncmp(a, "mode2=", 6))
            mode2 = a + 6;
        else if (!strncmp(a, "hold=", 5))
            hold = atoi(a + 5);
        else if (!strncmp(a, "seconds=", 8))
            seconds = atol(a + 8);
        else if (!strncmp(a, "fps=", 4))
            fps = atoi(a + 4);
        else if (!strncmp(a, "full=", 5))
            full = atoi(a + 5) != 0;
    }
    if ((!strcmp(scene_name, "cursor") || !strcmp(scene_name, "heads")) &&
        execv("/bin/cursor", argv) < 0) /* guest/cursor.c */
        fail("exec /bin/cursor: %s", strerror(errno));
    int w, h, w2, h2;
    if (parse_mode(mode, &w, &h) < 0)
        fail("bad mode '%s' (want WxH)", mode);
    if (parse_mode(mode2, &w2, &h2) < 0)
        fail("bad mode2 '%s' (want WxH)", mode2);
    if (fps <= 0 || fps > 100)
        fps = 20;

    if (iopl(3) < 0)
        fail("iopl(3): %s", strerror(errno));
    map_framebuffer();

    if (!strcmp(scene_name, "static")) {
        show_static(w, h);
    } else if (!strcmp(scene_name, "modes")) {
        show_static(w, h);
        sleep(hold > 0 ? (unsigned)hold : 0);
        show_static(w2, h2);
    } else if (!strcmp(scene_name, "input")) {
        input_loop(w, h);
    } else if (!strcmp(scene_name, "animate")) {
        animate(w, h, fps, seconds >= 0 ? (seconds * fps > 0 ? seconds * fps : 1) : -1, full);
        if (seconds < 0)
            fail("animation ended unexpectedly");
    } else {
        fail("unknown scene '%s'", scene_name);
    }
    idle_forever();
    return 0;
}
