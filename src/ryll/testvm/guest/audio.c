/*
 * audio: plays a sine or records and analyses sound for ryll's test VM, through the raw ALSA
 * PCM ioctls of <sound/asound.h> (no alsa-lib) on /dev/snd/pcmC0D0p and /dev/snd/pcmC0D0c
 * (QEMU's intel-hda + hda-duplex, which the SPICE server's playback and record channels carry).
 *
 *   audio play FREQ SECONDS [delay=S] [repeat=N] [pause=S]
 *       a sine of FREQ Hz at half scale, S16_LE, stereo, 48000 Hz (or what the device takes),
 *       for SECONDS, then drains.
 *   audio record SECONDS [delay=S] [repeat=N] [pause=S]
 *       records S16_LE at 48000 Hz (the channels the device takes) for SECONDS and reports the
 *       dominant frequency (Goertzel, 50..5000 Hz in 10 Hz steps, on 0.1 s blocks; 0 for pure
 *       silence) and the RMS level of all samples (0..32767 scale).
 *   delay=S waits S seconds first, repeat=N does it N times (0: forever; default 1), with
 *   pause=S seconds between runs (default 1). SECONDS, delay and pause may have decimals.
 *
 * Mixer: QEMU's HDA codec starts muted at volume 0, and QEMU hands the guest's volume and mute
 * to the SPICE client (the playback and record channels' VOLUME and MUTE), which applies them.
 * So before the first run it turns up, through the raw control ioctls on /dev/snd/controlC0,
 * for record every "... Capture ..." element, for play every "... Playback ..." one of Master,
 * PCM, Headphone, Speaker or Front: switches on, volumes to their maximum, on every channel.
 *
 * Markers on stdout (the serial console), one line each:
 *   "ryll-audio: mixer 'Capture Volume' = 127 (max)"    (one per element set; 'NAME',INDEX
 *   "ryll-audio: mixer 'Capture Switch' = on"            when the index is not 0)
 *   "ryll-audio: warning mixer ..." (an element or the control device it could not set; it
 *       goes on)
 *   "ryll-audio: device /dev/snd/pcmC0D0p rate 48000 channels 2 period 1024 buffer 4096"
 *   "ryll-audio: playing FREQ Hz for S s"
 *   "ryll-audio: played FREQ Hz for S s (N frames)"
 *   "ryll-audio: recording S s"
 *   "ryll-audio: recorded S s, peak FREQ Hz, rms R"    (R with one decimal)
 *   "ryll-audio: xruns N" (after a run that had underruns/overruns, which it recovers from)
 *   "ryll-audio: done" (after the last of a finite number of runs)
 *   "ryll: error audio ..." (then it stays, as the other guest programs do)
 *
 * Build: gcc -static -O2 -s -o audio audio.c -lm
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <sound/asound.h>

#include "guest.h"

#define PLAYBACK_DEV "/dev/snd/pcmC0D0p"
#define CAPTURE_DEV "/dev/snd/pcmC0D0c"
#define CONTROL_DEV "/dev/snd/controlC0"
#define WANT_RATE 48000u
#define WANT_PERIOD 1024u /* frames: 21 ms at 48 kHz */
#define WANT_PERIODS 4u
#define AMPLITUDE 16384.0 /* half of full scale */

struct pcm {
    int fd;
    const char *dev;
    unsigned rate, channels, period, buffer;
};

/* ------------------------------------------------------------------------------------------ */
/* hw_params: masks and intervals                                                               */

static struct snd_mask *mask(struct snd_pcm_hw_params *p, int param)
{
    return &p->masks[param - SNDRV_PCM_HW_PARAM_FIRST_MASK];
}

static struct snd_interval *interval(struct snd_pcm_hw_params *p, int param)
{
    return &p->intervals[param - SNDRV_PCM_HW_PARAM_FIRST_INTERVAL];
}

/* Everything allowed, as alsa-lib's snd_pcm_hw_params_any() starts. */
static void params_any(struct snd_pcm_hw_params *p)
{
    memset(p, 0, sizeof *p);
    for (int k = SNDRV_PCM_HW_PARAM_FIRST_MASK; k <= SNDRV_PCM_HW_PARAM_LAST_MASK; k++)
        memset(mask(p, k)->bits, 0xff, sizeof mask(p, k)->bits);
    for (int k = SNDRV_PCM_HW_PARAM_FIRST_INTERVAL; k <= SNDRV_PCM_HW_PARAM_LAST_INTERVAL; k++) {
        struct snd_interval *i = interval(p, k);
        i->min = 0;
        i->max = ~0u;
    }
    p->rmask = ~0u;
    p->cmask = 0;
    p->info = ~0u;
}

static void mask_only(struct snd_pcm_hw_params *p, int param, unsigned bit)
{
    struct snd_mask *m = mask(p, param);
    memset(m->bits, 0, sizeof m->bits);
    m->bits[bit >> 5] = 1u << (bit & 31);
}

static void interval_set(struct snd_pcm_hw_params *p, int param, unsigned value)
{
    struct snd_interval *i = interval(p, param);
    i->min = i->max = value;
    i->openmin = i->openmax = 0;
    i->integer = 1;
    i->empty = 0;
}

static unsigned clamp_to(const struct snd_interval *i, unsigned want)
{
    unsigned lo = i->min + (i->openmin ? 1 : 0), hi = i->max - (i->openmax ? 1 : 0);
    return want < lo ? lo : want > hi ? hi : want;
}

static int refine(int fd, struct snd_pcm_hw_params *p)
{
    p->rmask = ~0u;
    return ioctl(fd, SNDRV_PCM_IOCTL_HW_REFINE, p);
}

/* Narrows ``param`` to the value closest to ``want`` the device takes (keeping ``p`` as it was
 * if that fails), then refines. */
static void narrow(int fd, struct snd_pcm_hw_params *p, int param, unsigned want)
{
    struct snd_pcm_hw_params trial = *p;
    interval_set(&trial, param, clamp_to(interval(p, param), want));
    if (refine(fd, &trial) == 0)
        *p = trial;
}

static void pcm_open(struct pcm *pcm, const char *dev, int capture)
{
    pcm->dev = dev;
    /* The HDA driver probes asynchronously: give the node up to 20 s to appear. */
    for (int tries = 0; (pcm->fd = open(dev, capture ? O_RDONLY : O_WRONLY)) < 0; tries++) {
        if (errno != ENOENT && errno != ENODEV && errno != EBUSY)
            fail("audio open %s: %s", dev, strerror(errno));
        if (tries >= 200)
            fail("audio open %s: %s (is the VM started with sound=True?)", dev, strerror(errno));
        usleep(100 * 1000);
    }

    struct snd_pcm_hw_params p;
    params_any(&p);
    if (refine(pcm->fd, &p) < 0)
        fail("audio %s HW_REFINE: %s", dev, strerror(errno));
    mask_only(&p, SNDRV_PCM_HW_PARAM_ACCESS, SNDRV_PCM_ACCESS_RW_INTERLEAVED);
    mask_only(&p, SNDRV_PCM_HW_PARAM_FORMAT, SNDRV_PCM_FORMAT_S16_LE);
    mask_only(&p, SNDRV_PCM_HW_PARAM_SUBFORMAT, SNDRV_PCM_SUBFORMAT_STD);
    if (refine(pcm->fd, &p) < 0)
        fail("audio %s takes no interleaved S16_LE: %s", dev, strerror(errno));
    narrow(pcm->fd, &p, SNDRV_PCM_HW_PARAM_CHANNELS, 2);
    narrow(pcm->fd, &p, SNDRV_PCM_HW_PARAM_RATE, WANT_RATE);
    narrow(pcm->fd, &p, SNDRV_PCM_HW_PARAM_PERIOD_SIZE, WANT_PERIOD);
    narrow(pcm->fd, &p, SNDRV_PCM_HW_PARAM_PERIODS, WANT_PERIODS);
    p.rmask = ~0u;
    if (ioctl(pcm->fd, SNDRV_PCM_IOCTL_HW_PARAMS, &p) < 0)
        fail("audio %s HW_PARAMS: %s", dev, strerror(errno));
    pcm->channels = interval(&p, SNDRV_PCM_HW_PARAM_CHANNELS)->min;
    pcm->rate = interval(&p, SNDRV_PCM_HW_PARAM_RATE)->min;
    pcm->period = interval(&p, SNDRV_PCM_HW_PARAM_PERIOD_SIZE)->min;
    pcm->buffer = interval(&p, SNDRV_PCM_HW_PARAM_BUFFER_SIZE)->min;
    if (!pcm->channels || !pcm->rate || !pcm->period || pcm->buffer < pcm->period)
        fail("audio %s: odd hw_params (channels %u rate %u period %u buffer %u)", dev,
             pcm->channels, pcm->rate, pcm->period, pcm->buffer);

    /* Playback starts once the buffer is full (no underrun at the start), capture at once. */
    struct snd_pcm_sw_params sw;
    memset(&sw, 0, sizeof sw);
    sw.tstamp_mode = SNDRV_PCM_TSTAMP_NONE;
    sw.period_step = 1;
    sw.avail_min = pcm->period;
    sw.xfer_align = 1;
    sw.start_threshold = capture ? 1 : pcm->buffer;
    sw.stop_threshold = pcm->buffer;
    sw.proto = SNDRV_PCM_VERSION;
    if (ioctl(pcm->fd, SNDRV_PCM_IOCTL_SW_PARAMS, &sw) < 0)
        fail("audio %s SW_PARAMS: %s", dev, strerror(errno));
    if (ioctl(pcm->fd, SNDRV_PCM_IOCTL_PREPARE) < 0)
        fail("audio %s PREPARE: %s", dev, strerror(errno));
    say("ryll-audio: device %s rate %u channels %u period %u buffer %u", dev, pcm->rate,
        pcm->channels, pcm->period, pcm->buffer);
}

static void pcm_close(struct pcm *pcm)
{
    close(pcm->fd);
    pcm->fd = -1;
}

/* WRITEI/READI ``frames`` frames; recovers from an xrun (EPIPE: PREPARE, go on). Returns the
 * frames moved (all of them unless the device fails). */
static unsigned long transfer(struct pcm *pcm, int16_t *buf, unsigned long frames, int capture,
                              unsigned *xruns)
{
    unsigned long done = 0;
    while (done < frames) {
        struct snd_xferi x = {0, buf + done * pcm->channels, frames - done};
        int r = ioctl(pcm->fd, capture ? SNDRV_PCM_IOCTL_READI_FRAMES
                                       : SNDRV_PCM_IOCTL_WRITEI_FRAMES, &x);
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            if (errno == EPIPE) {
                ++*xruns;
                if (ioctl(pcm->fd, SNDRV_PCM_IOCTL_PREPARE) < 0)
                    fail("audio %s PREPARE after xrun: %s", pcm->dev, strerror(errno));
                continue;
            }
            fail("audio %s %s: %s", pcm->dev, capture ? "READI" : "WRITEI", strerror(errno));
        }
        if (x.result > 0)
            done += (unsigned long)x.result;
    }
    return done;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_seconds(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static unsigned gcd(unsigned a, unsigned b)
{
    while (b) {
        unsigned t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* ------------------------------------------------------------------------------------------ */
/* mixer                                                                                        */

/* Whether mixer_up() sets the element ``name``: for capture every "Capture" one, for playback
 * the "Playback" ones of the usual outputs. */
static int mixer_wanted(const char *name, int capture)
{
    static const char *const outputs[] = {"Master", "PCM", "Headphone", "Speaker", "Front"};
    if (capture)
        return strstr(name, "Capture") != NULL;
    if (!strstr(name, "Playback"))
        return 0;
    for (size_t k = 0; k < sizeof outputs / sizeof *outputs; k++)
        if (strstr(name, outputs[k]))
            return 1;
    return 0;
}

/* Switches on and turns to their maximum the capture (or playback) elements of card 0's mixer,
 * every channel of each. What it cannot do it warns about and leaves. */
static void mixer_up(int capture)
{
    const char *what = capture ? "capture" : "playback";
    int fd;
    /* The control node appears with the PCM ones (pcm_open waits the same way). */
    for (int tries = 0; (fd = open(CONTROL_DEV, O_RDWR)) < 0; tries++) {
        if ((errno != ENOENT && errno != ENODEV) || tries >= 200) {
            say("ryll-audio: warning mixer %s: %s (%s mixer left as it is)", CONTROL_DEV,
                strerror(errno), what);
            return;
        }
        usleep(100 * 1000);
    }

    /* ELEM_LIST twice: the count, then the ids. */
    struct snd_ctl_elem_list list;
    memset(&list, 0, sizeof list);
    struct snd_ctl_elem_id *ids = NULL;
    if (ioctl(fd, SNDRV_CTL_IOCTL_ELEM_LIST, &list) < 0) {
        say("ryll-audio: warning mixer %s ELEM_LIST: %s", CONTROL_DEV, strerror(errno));
        goto out;
    }
    unsigned count = list.count;
    ids = calloc(count ? count : 1, sizeof *ids);
    if (!ids) {
        say("ryll-audio: warning mixer: out of memory for %u elements", count);
        goto out;
    }
    list.offset = 0;
    list.space = count;
    list.pids = ids;
    if (ioctl(fd, SNDRV_CTL_IOCTL_ELEM_LIST, &list) < 0) {
        say("ryll-audio: warning mixer %s ELEM_LIST: %s", CONTROL_DEV, strerror(errno));
        goto out;
    }

    unsigned set = 0;
    for (unsigned e = 0; e < list.used; e++) {
        char name[SNDRV_CTL_ELEM_ID_NAME_MAXLEN + 1], label[SNDRV_CTL_ELEM_ID_NAME_MAXLEN + 16];
        snprintf(name, sizeof name, "%.*s", SNDRV_CTL_ELEM_ID_NAME_MAXLEN,
                 (const char *)ids[e].name);
        /* Mixer elements only: not e.g. the PCM's read-only "Capture Channel Map". */
        if (ids[e].iface != SNDRV_CTL_ELEM_IFACE_MIXER || !mixer_wanted(name, capture))
            continue;
        if (ids[e].index) /* as amixer names them */
            snprintf(label, sizeof label, "'%s',%u", name, ids[e].index);
        else
            snprintf(label, sizeof label, "'%s'", name);

        struct snd_ctl_elem_info info;
        memset(&info, 0, sizeof info);
        info.id = ids[e];
        if (ioctl(fd, SNDRV_CTL_IOCTL_ELEM_INFO, &info) < 0) {
            say("ryll-audio: warning mixer %s ELEM_INFO: %s", label, strerror(errno));
            continue;
        }
        int is_switch = info.type == SNDRV_CTL_ELEM_TYPE_BOOLEAN;
        if (!is_switch && info.type != SNDRV_CTL_ELEM_TYPE_INTEGER)
            continue; /* e.g. the "Capture Source" enumeration */
        if (!(info.access & SNDRV_CTL_ELEM_ACCESS_WRITE)) {
            say("ryll-audio: warning mixer %s is read-only", label);
            continue;
        }
        struct snd_ctl_elem_value v;
        memset(&v, 0, sizeof v);
        v.id = info.id;
        unsigned channels = info.count, most = sizeof v.value.integer.value / sizeof(long);
        long value = is_switch ? 1 : info.value.integer.max;
        for (unsigned c = 0; c < channels && c < most; c++)
            v.value.integer.value[c] = value; /* BOOLEAN values are longs too */
        if (ioctl(fd, SNDRV_CTL_IOCTL_ELEM_WRITE, &v) < 0) {
            say("ryll-audio: warning mixer %s ELEM_WRITE: %s", label, strerror(errno));
            continue;
        }
        if (is_switch)
            say("ryll-audio: mixer %s = on", label);
        else
            say("ryll-audio: mixer %s = %ld (max)", label, value);
        set++;
    }
    if (!set)
        say("ryll-audio: warning mixer %s: no %s element to set (%u elements)", CONTROL_DEV,
            what, list.used);
out:
    free(ids);
    close(fd);
}

/* ------------------------------------------------------------------------------------------ */
/* play                                                                                         */

static void play(unsigned freq, double seconds)
{
    struct pcm pcm;
    pcm_open(&pcm, PLAYBACK_DEV, 0);
    unsigned long total = (unsigned long)llround(seconds * pcm.rate);
    /* One exact cycle of the sine repeats every rate / gcd(freq, rate) frames. */
    unsigned cycle = pcm.rate / gcd(freq, pcm.rate);
    int16_t *table = malloc(sizeof *table * cycle);
    int16_t *buf = malloc(sizeof *buf * pcm.period * pcm.channels);
    if (!table || !buf)
        fail("audio: out of memory");
    for (unsigned i = 0; i < cycle; i++)
        table[i] = (int16_t)lrint(AMPLITUDE * sin(2 * M_PI * (double)freq * i / pcm.rate));

    say("ryll-audio: playing %u Hz for %g s", freq, seconds);
    double t0 = now();
    unsigned xruns = 0, pos = 0;
    unsigned long done = 0;
    while (done < total) {
        unsigned long n = total - done < pcm.period ? total - done : pcm.period;
        for (unsigned long f = 0; f < n; f++) {
            for (unsigned c = 0; c < pcm.channels; c++)
                buf[f * pcm.channels + c] = table[pos];
            if (++pos == cycle)
                pos = 0;
        }
        done += transfer(&pcm, buf, n, 0, &xruns);
    }
    while (ioctl(pcm.fd, SNDRV_PCM_IOCTL_DRAIN) < 0) {
        if (errno == EINTR)
            continue;
        if (errno == EPIPE) { /* an underrun at the very end: what was written has played */
            xruns++;
            break;
        }
        fail("audio %s DRAIN: %s", pcm.dev, strerror(errno));
    }
    double took = now() - t0;
    pcm_close(&pcm);
    say("ryll-audio: played %u Hz for %g s (%lu frames)", freq, seconds, done);
    if (xruns)
        say("ryll-audio: xruns %u", xruns);
    say("ryll-audio: play took %.2f s", took);
    free(table);
    free(buf);
}

/* ------------------------------------------------------------------------------------------ */
/* record                                                                                       */

#define SCAN_LO 50
#define SCAN_HI 5000
#define SCAN_STEP 10
#define NBINS ((SCAN_HI - SCAN_LO) / SCAN_STEP + 1)
#define MAX_BLOCKS 30

/* Goertzel power of each bin (SCAN_LO + k * SCAN_STEP Hz) over ``n`` mono samples, added to
 * ``power``. Fixed point (Q24 coefficients, 64-bit state): TCG runs integer code much faster
 * than floating point. */
static void goertzel(const int32_t *x, unsigned n, unsigned rate, double *power)
{
    for (int k = 0; k < NBINS; k++) {
        double w = 2 * M_PI * (SCAN_LO + k * SCAN_STEP) / rate;
        int64_t c = llround(2 * cos(w) * (1 << 24));
        int64_t s1 = 0, s2 = 0;
        for (unsigned i = 0; i < n; i++) {
            int64_t s0 = x[i] + ((c * s1) >> 24) - s2;
            s2 = s1;
            s1 = s0;
        }
        double a = (double)s1, b = (double)s2, cf = (double)c / (1 << 24);
        power[k] += a * a + b * b - cf * a * b;
    }
}

static void record(double seconds)
{
    struct pcm pcm;
    pcm_open(&pcm, CAPTURE_DEV, 1);
    unsigned long total = (unsigned long)llround(seconds * pcm.rate);
    int16_t *buf = malloc(sizeof *buf * (total ? total : 1) * pcm.channels);
    if (!buf)
        fail("audio: out of memory");
    say("ryll-audio: recording %g s", seconds);
    unsigned xruns = 0;
    if (ioctl(pcm.fd, SNDRV_PCM_IOCTL_START) < 0 && errno != EBADFD)
        fail("audio %s START: %s", pcm.dev, strerror(errno));
    unsigned long done = 0;
    while (done < total) {
        unsigned long n = total - done < pcm.period ? total - done : pcm.period;
        done += transfer(&pcm, buf + done * pcm.channels, n, 1, &xruns);
    }
    ioctl(pcm.fd, SNDRV_PCM_IOCTL_DROP);
    pcm_close(&pcm);

    /* RMS over every sample; the analysis over the channels' mean. */
    double sum2 = 0;
    for (unsigned long i = 0; i < total * pcm.channels; i++)
        sum2 += (double)buf[i] * buf[i];
    double rms = total ? sqrt(sum2 / ((double)total * pcm.channels)) : 0;
    unsigned block = pcm.rate / SCAN_STEP; /* 0.1 s: the bins are SCAN_STEP Hz apart */
    unsigned long nblocks = total / block;
    unsigned use = nblocks > MAX_BLOCKS ? MAX_BLOCKS : (unsigned)nblocks;
    int32_t *mono = malloc(sizeof *mono * block);
    static double power[NBINS];
    memset(power, 0, sizeof power);
    for (unsigned b = 0; mono && b < use; b++) {
        unsigned long first = (nblocks * b / use) * block; /* spread over the recording */
        for (unsigned i = 0; i < block; i++) {
            int32_t s = 0;
            for (unsigned c = 0; c < pcm.channels; c++)
                s += buf[(first + i) * pcm.channels + c];
            mono[i] = s / (int32_t)pcm.channels;
        }
        goertzel(mono, block, pcm.rate, power);
    }
    int best = -1;
    double best_power = 0;
    for (int k = 0; k < NBINS; k++) {
        if (power[k] > best_power) {
            best_power = power[k];
            best = k;
        }
    }
    unsigned peak = best < 0 ? 0 : SCAN_LO + best * SCAN_STEP;
    say("ryll-audio: recorded %g s, peak %u Hz, rms %.1f", seconds, peak, rms);
    if (xruns)
        say("ryll-audio: xruns %u", xruns);
    free(mono);
    free(buf);
}

/* ------------------------------------------------------------------------------------------ */

static double number(const char *s, const char *what)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || v < 0 || v > 3600)
        fail("audio: bad %s '%s'", what, s);
    return v;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    int is_play = argc >= 4 && !strcmp(argv[1], "play");
    int is_record = argc >= 3 && !strcmp(argv[1], "record");
    if (!is_play && !is_record)
        fail("audio: usage: audio play FREQ SECONDS | audio record SECONDS "
             "[delay=S] [repeat=N] [pause=S]");
    unsigned freq = 0;
    double seconds;
    int next;
    if (is_play) {
        double f = number(argv[2], "frequency");
        if (f < 1 || f > 20000 || f != (unsigned)f)
            fail("audio: bad frequency '%s' (1..20000 Hz, whole)", argv[2]);
        freq = (unsigned)f;
        seconds = number(argv[3], "seconds");
        next = 4;
    } else {
        seconds = number(argv[2], "seconds");
        next = 3;
    }
    double delay = 0, pause_s = 1;
    long repeat = 1;
    for (int i = next; i < argc; i++) {
        if (!strncmp(argv[i], "delay=", 6))
            delay = number(argv[i] + 6, "delay");
        else if (!strncmp(argv[i], "pause=", 6))
            pause_s = number(argv[i] + 6, "pause");
        else if (!strncmp(argv[i], "repeat=", 7))
            repeat = atol(argv[i] + 7);
        else
            fail("audio: unknown argument '%s'", argv[i]);
    }
    mixer_up(is_record);
    sleep_seconds(delay);
    for (long run = 0; repeat <= 0 || run < repeat; run++) {
        if (run)
            sleep_seconds(pause_s);
        if (is_play)
            play(freq, seconds);
        else
            record(seconds);
    }
    say("ryll-audio: done");
    return 0;
}
