# cython: language_level=3
"""The compiled core of the QUIC codec (decoder, and an encoder for tests and benchmarks).

QUIC is SPICE's lossless image codec (SFALIC by Roman Starosolski, as adapted in spice-common's
``common/quic.c``, ``quic_tmpl.c`` and ``quic_family_tmpl.c``). This module re-implements it
from those sources, bit for bit:

- each channel value is predicted from its left (``a``) and upper (``b``) neighbour:
  ``(a + b) >> 1`` (``a`` alone on the first row, ``b`` alone for the first pixel of a row), the
  residual is folded to an unsigned "L" value (``xlatU2L``) and Golomb-Rice coded with a code
  number ``l`` (0..bpc-1) chosen per context bucket (bucket = the previous residual's
  magnitude class, sizes 1, 2, 4, 8...; ``find_model_params`` with DEFevol 3);
- codes longer than the limit 26 (DEFmaxclen) become "not-GR" codewords of fixed length;
- a bucket's best code adapts: every ``waitmask``-random number of pixels
  (``tabrand_chaos`` & ``bppmask[wmidx]``) the bucket counters are updated with the code
  lengths each ``l`` would have spent (``update_model``), halving them past ``wm_trigger``;
  ``wmidx`` grows every 2048 coded pixels up to 6 (DEFwminext, DEFwmimax);
- run mode (rows >= 1, ``i > 2``, left-above pair equal and the two left pixels equal) codes
  a run length with the MELCODE state table ``J`` (``decode_state_run``);
- the bitstream is MSB-first out of little-endian u32 words, with a 32-bit look-ahead window.

RGB types share one ``CommonState`` (quic.c's ``rgb_state``) across R, G, B (coded in that
order per pixel); GRAY uses channel 0's own state, RGBA's alpha plane channel 3's own state and
is coded row by row after the RGB part of the same row.

Memory safety: the hot loops use raw C pointers (Cython's bounds checks only cover buffer
indexing, and per-byte checks would cost more than the decode). Their safety rests on
invariants established before the loops run and commented where they are used:
- the output buffer is checked (in ``decode``) to hold ``width * height * 4`` bytes and every
  write is at ``row * width * 4 + 4 * i + k`` with ``0 <= i < width``, ``k < 4``;
- a decoded run is rejected before it is copied unless it ends at or before the segment end
  (<= width), exactly as quic.c's "wrong RLE" check;
- the bit reader only loads word ``pos`` while ``pos < nwords`` (nwords = len(data) // 4); past
  the end it feeds zeros and sets ``truncated``, which is checked after every segment (zeros
  always decode to finite codes, so every loop still ends);
- every table index is a byte (< 256) or a code number ``l`` < bpc <= 8 (``bestcode`` is only
  ever set by ``update_model`` to a value below bpc), and all tables have 256 / 8 entries;
- correlation rows hold ``width + 1`` bytes, index -1 .. width-1.
"""

from libc.stdint cimport uint8_t, uint32_t, int64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    /* The pseudo-random table that spaces model updates: quic.c tabrand_chaos[] (data, needed
       bit for bit for compatibility). */
    static const uint32_t ryll_quic_chaos[256] = {
    0x02c57542,0x35427717,0x2f5a2153,0x9244f155,0x7bd26d07,0x354c6052,0x57329b28,0x2993868e,
    0x6cd8808c,0x147b46e0,0x99db66af,0xe32b4cac,0x1b671264,0x9d433486,0x62a4c192,0x06089a4b,
    0x9e3dce44,0xdaabee13,0x222425ea,0xa46f331d,0xcd589250,0x8bb81d7f,0xc8b736b9,0x35948d33,
    0xd7ac7fd0,0x5fbe2803,0x2cfbc105,0x013dbc4e,0x7a37820f,0x39f88e9e,0xedd58794,0xc5076689,
    0xfcada5a4,0x64c2f46d,0xb3ba3243,0x8974b4f9,0x5a05aebd,0x20afcd00,0x39e2b008,0x88a18a45,
    0x600bde29,0xf3971ace,0xf37b0a6b,0x7041495b,0x70b707ab,0x06beffbb,0x4206051f,0xe13c4ee3,
    0xc1a78327,0x91aa067c,0x8295f72a,0x732917a6,0x1d871b4d,0x4048f136,0xf1840e7e,0x6a6048c1,
    0x696cb71a,0x7ff501c3,0x0fc6310b,0x57e0f83d,0x8cc26e74,0x11a525a2,0x946934c7,0x7cd888f0,
    0x8f9d8604,0x4f86e73b,0x04520316,0xdeeea20c,0xf1def496,0x67687288,0xf540c5b2,0x22401484,
    0x3478658a,0xc2385746,0x01979c2c,0x5dad73c8,0x0321f58b,0xf0fedbee,0x92826ddf,0x284bec73,
    0x5b1a1975,0x03df1e11,0x20963e01,0xa17cf12b,0x740d776e,0xa7a6bf3c,0x01b5cce4,0x1118aa76,
    0xfc6fac0a,0xce927e9b,0x00bf2567,0x806f216c,0xbca69056,0x795bd3e9,0xc9dc4557,0x8929b6c2,
    0x789d52ec,0x3f3fbf40,0xb9197368,0xa38c15b5,0xc3b44fa8,0xca8333b0,0xb7e8d590,0xbe807feb,
    0xbf5f8360,0xd99e2f5c,0x372928e1,0x7c757c4c,0x0db5b154,0xc01ede02,0x1fc86e78,0x1f3985be,
    0xb4805c77,0x00c880fa,0x974c1b12,0x35ab0214,0xb2dc840d,0x5b00ae37,0xd313b026,0xb260969d,
    0x7f4c8879,0x1734c4d3,0x49068631,0xb9f6a021,0x6b863e6f,0xcee5debf,0x29f8c9fb,0x53dd6880,
    0x72b61223,0x1f67a9fd,0x0a0f6993,0x13e59119,0x11cca12e,0xfe6b6766,0x16b6effc,0x97918fc4,
    0xc2b8a563,0x94f2f741,0x0bfa8c9a,0xd1537ae8,0xc1da349c,0x873c60ca,0x95005b85,0x9b5c080e,
    0xbc8abbd9,0xe1eab1d2,0x6dac9070,0x4ea9ebf1,0xe0cf30d4,0x1ef5bd7b,0xd161043e,0x5d2fa2e2,
    0xff5d3cae,0x86ed9f87,0x2aa1daa1,0xbd731a34,0x9e8f4b22,0xb1c2c67a,0xc21758c9,0xa182215d,
    0xccb01948,0x8d168df7,0x04238cfe,0x368c3dbc,0x0aeadca5,0xbad21c24,0x0a71fee5,0x9fc5d872,
    0x54c152c6,0xfc329483,0x6783384a,0xeddb3e1c,0x65f90e30,0x884ad098,0xce81675a,0x4b372f7d,
    0x68bf9a39,0x43445f1e,0x40f8d8cb,0x90d5acb6,0x4cd07282,0x349eeb06,0x0c9d5332,0x520b24ef,
    0x80020447,0x67976491,0x2f931ca3,0xfe9b0535,0xfcd30220,0x61a9e6cc,0xa487d8d7,0x3f7c5dd1,
    0x7d0127c5,0x48f51d15,0x60dea871,0xc9a91cb7,0x58b53bb3,0x9d5e0b2d,0x624a78b4,0x30dbee1b,
    0x9bdf22e7,0x1df5c299,0x2d5643a7,0xf4dd35ff,0x03ca8fd6,0x53b47ed8,0x6f2c19aa,0xfeb0c1f4,
    0x49e54438,0x2f2577e6,0xbf876969,0x72440ea9,0xfa0bafb8,0x74f5b3a0,0x7dd357cd,0x89ce1358,
    0x6ef2cdda,0x1e7767f3,0xa6be9fdb,0x4f5f88f8,0xba994a3a,0x08ca6b65,0xe0893818,0x9e00a16a,
    0xf42bfc8f,0x9972eedc,0x749c8b51,0x32c05f5e,0xd706805f,0x6bfbb7cf,0xd9210a10,0x31a1db97,
    0x923a9559,0x37a7a1f6,0x059f8861,0xca493e62,0x65157e81,0x8f6467dd,0xab85ff9f,0x9331aff2,
    0x8616b9f5,0xedbd5695,0xee7e29b1,0x313ac44f,0xb903112f,0x432ef649,0xdc0a36c0,0x61cf2bba,
    0x81474925,0xa8b6c7ad,0xee5931de,0xb2f8158d,0x59fb7409,0x2e3dfaed,0x9af25a3f,0xe1fed4d5
    };
    static inline unsigned int ryll_quic_clz(uint32_t x) { return (unsigned int)__builtin_clz(x); }
    static inline uint32_t ryll_quic_le32(const uint8_t *p) {
        return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16)
               | ((uint32_t)p[3] << 24);
    }
    static inline void ryll_quic_copy4(uint8_t *dst, const uint8_t *src) { memcpy(dst, src, 4); }
    """
    const uint32_t ryll_quic_chaos[256]
    unsigned int ryll_quic_clz(uint32_t x) noexcept nogil
    uint32_t ryll_quic_le32(const uint8_t *p) noexcept nogil
    void ryll_quic_copy4(uint8_t *dst, const uint8_t *src) noexcept nogil

cdef enum:
    # QuicImageType (quic.h)
    DEF_GRAY = 1
    DEF_RGB16 = 2
    DEF_RGB24 = 3
    DEF_RGB32 = 4
    DEF_RGBA = 5
    # return codes of the C-level decode
    RC_OK = 0
    RC_TRUNCATED = 1
    RC_RLE = 2

OK = RC_OK
ERR_TRUNCATED = RC_TRUNCATED
ERR_RLE = RC_RLE

cdef enum:
    MAXNUMCODES = 8
    DEFMAXCLEN = 26       # codeword length limit (DEFmaxclen)
    DEFWMIMAX = 6         # target wait-mask index (DEFwmimax)
    DEFWMINEXT = 2048     # symbols before the wait-mask index grows (DEFwminext)
    MELCSTATES = 32

ctypedef struct Family:
    unsigned int bpc
    unsigned int mask
    unsigned int n_gr[8]              # nGRcodewords
    unsigned int notgr_cwlen[8]       # notGRcwlen
    unsigned int notgr_prefixmask[8]  # notGRprefixmask
    unsigned int notgr_suffixmask[8]  # bppmask[notGRsuffixlen]
    unsigned int code[256 * 8]        # golomb_code[n][l] at n * 8 + l
    unsigned int code_len[256 * 8]    # golomb_code_len[n][l]
    uint8_t u2l[256]                  # xlatU2L
    unsigned int l2u[256]             # xlatL2U (0 past 2^bpc, like quic.c's static table)
    uint8_t bucket_of[256]            # find_bucket(val & mask) as a bucket number

ctypedef struct Model:
    unsigned int counters[8 * 8]      # [bucket][code]
    unsigned int bestcode[8]          # per bucket

ctypedef struct State:                # quic.c CommonState
    unsigned int waitcnt
    unsigned int seed
    unsigned int wm_trigger
    unsigned int wmidx
    unsigned int wmileft
    int melcstate
    int melclen
    unsigned int melcorder

ctypedef struct Reader:
    const uint8_t *data
    Py_ssize_t nwords
    Py_ssize_t pos
    uint32_t word                     # the next 32 bits of the stream, MSB first (io_word)
    uint32_t nxt                      # the word being consumed (io_next_word)
    int avail                         # bits of nxt not yet in word (io_available_bits)
    int truncated

ctypedef struct Writer:
    uint8_t *out
    Py_ssize_t cap                    # in words
    Py_ssize_t pos                    # words written
    uint32_t word
    int avail
    int overflow

ctypedef struct Ctx:
    const Family *fam
    Model models[4]
    State rgb
    State chan[4]
    uint8_t *corr[4]                  # correlate_row of each channel; corr[c][-1] is valid

cdef unsigned int BPPMASK[33]
cdef int J[MELCSTATES]
cdef unsigned int TRIGTAB[11]
cdef Family FAM8
cdef Family FAM5

cdef _init_tables():
    cdef int k
    for k in range(33):
        BPPMASK[k] = ((1u << k) - 1u) if k < 32 else 0xffffffffu
    cdef list j = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 5, 5, 6, 6, 7,
                   7, 8, 9, 10, 11, 12, 13, 14, 15]
    for k in range(MELCSTATES):
        J[k] = j[k]
    # besttrigtab[DEFevol / 2] with DEFevol = 3
    cdef list trig = [110, 550, 900, 800, 550, 400, 350, 250, 140, 160, 140]
    for k in range(11):
        TRIGTAB[k] = trig[k]
    _family_init(&FAM8, 8, DEFMAXCLEN)
    _family_init(&FAM5, 5, DEFMAXCLEN)


cdef unsigned int _ceil_log2(unsigned int val):
    cdef unsigned int result = 1
    if val == 1:
        return 0
    val -= 1
    val >>= 1
    while val:
        result += 1
        val >>= 1
    return result


cdef void _family_init(Family *f, unsigned int bpc, int limit):
    """family_init + decorrelate_init + correlate_init + the bucket layout of
    find_model_params/fill_model_structures (DEFevol 3: bucket sizes 1, 2, 4, ...; a bucket
    is merged into the last one when the next would pass the top level)."""
    cdef int l, b, altprefixlen, altcodewords
    cdef unsigned int suffixlen, n, levels, bstart, bend, bsize, bnumber, s, pmask
    memset(f, 0, sizeof(Family))
    f.bpc = bpc
    f.mask = BPPMASK[bpc]
    for l in range(<int>bpc):
        altprefixlen = limit - <int>bpc
        if altprefixlen > <int>BPPMASK[bpc - l]:
            altprefixlen = BPPMASK[bpc - l]
        altcodewords = <int>BPPMASK[bpc] + 1 - (altprefixlen << l)
        f.n_gr[l] = altprefixlen << l
        suffixlen = _ceil_log2(altcodewords)
        f.notgr_suffixmask[l] = BPPMASK[suffixlen]
        f.notgr_cwlen[l] = altprefixlen + suffixlen
        f.notgr_prefixmask[l] = BPPMASK[32 - altprefixlen]
        for b in range(256):
            n = b
            if n < f.n_gr[l]:
                f.code[b * 8 + l] = (1u << l) | (n & BPPMASK[l])
                f.code_len[b * 8 + l] = (n >> l) + l + 1
            else:
                f.code[b * 8 + l] = n - f.n_gr[l]
                f.code_len[b * 8 + l] = f.notgr_cwlen[l]
    pmask = BPPMASK[bpc]
    for s in range(pmask + 1):
        if s <= (pmask >> 1):
            f.u2l[s] = <uint8_t>(s << 1)
        else:
            f.u2l[s] = <uint8_t>(((pmask - s) << 1) + 1)
        if s & 1:
            f.l2u[s] = pmask - (s >> 1)
        else:
            f.l2u[s] = s >> 1
    levels = 1u << bpc
    cdef uint8_t by_level[256]
    bnumber = 0
    bend = 0
    bsize = 1
    cdef unsigned int repcntr = 2       # repfirst 1 + 1
    while True:
        bstart = bend + 1 if bnumber else 0
        repcntr -= 1
        if repcntr == 0:
            repcntr = 1                 # repnext
            bsize *= 2                  # mulsize
        bend = bstart + bsize - 1
        if bend + bsize >= levels:
            bend = levels - 1
        for s in range(bstart, bend + 1):
            by_level[s] = <uint8_t>bnumber
        bnumber += 1
        if bend >= levels - 1:
            break
    for s in range(256):
        f.bucket_of[s] = by_level[s & pmask]


_init_tables()

# ---------------------------------------------------------------------------------------------
# Shared model code


cdef inline void _state_reset(State *st) noexcept nogil:
    # encoder_reset / encoder_reset_channels + encoder_init_rle
    st.waitcnt = 0
    st.seed = 0xff                      # stabrand(): TABRAND_SEEDMASK
    st.wmidx = 0                        # DEFwmistart
    st.wmileft = DEFWMINEXT
    st.wm_trigger = TRIGTAB[0]
    st.melcstate = 0
    st.melclen = J[0]
    st.melcorder = 1u << st.melclen


cdef inline void _set_wm_trigger(State *st) noexcept nogil:
    cdef unsigned int wm = st.wmidx
    if wm > 10:
        wm = 10
    st.wm_trigger = TRIGTAB[wm]


cdef inline unsigned int _tabrand(State *st) noexcept nogil:
    st.seed += 1
    return ryll_quic_chaos[st.seed & 0xff]


cdef void _model_reset(Model *m, unsigned int bpc) noexcept nogil:
    cdef int k
    memset(m, 0, sizeof(Model))
    for k in range(8):
        m.bestcode[k] = bpc - 1


cdef inline void _update_model(const Family *f, Model *m, unsigned int bucket,
                               unsigned int curval, unsigned int trigger) noexcept nogil:
    # update_model: add each code's length for curval, pick the shortest (ties keep the
    # higher code, as the C scans down with a strict <), halve past the trigger.
    # bucket < 8 (bucket_of values), curval < 256: in bounds.
    cdef unsigned int *cnt = &m.counters[bucket * 8]
    cdef const unsigned int *lens = &f.code_len[curval * 8]
    cdef int bpp = f.bpc
    cdef int k
    cdef unsigned int bestcode = bpp - 1
    cnt[bestcode] += lens[bestcode]
    cdef unsigned int bestlen = cnt[bestcode]
    cdef unsigned int kl
    k = bpp - 2
    while k >= 0:
        cnt[k] += lens[k]
        kl = cnt[k]
        if kl < bestlen:
            bestcode = k
            bestlen = kl
        k -= 1
    m.bestcode[bucket] = bestcode
    if bestlen > trigger:
        for k in range(bpp):
            cnt[k] >>= 1


# ---------------------------------------------------------------------------------------------
# Bit reader (quic.c init_decode_io / decode_eatbits / read_io_word)


cdef inline void _rd_refill(Reader *r) noexcept nogil:
    if r.pos < r.nwords:
        r.nxt = ryll_quic_le32(r.data + 4 * r.pos)   # pos < nwords = len // 4: in bounds
        r.pos += 1
    else:
        r.nxt = 0
        r.truncated = 1


cdef inline void _rd_eat(Reader *r, int n) noexcept nogil:
    # 1 <= n <= 26 at every call site, so no shift reaches 32.
    cdef int delta
    r.word = r.word << n
    delta = r.avail - n
    if delta >= 0:
        r.avail = delta
        r.word |= r.nxt >> delta
        return
    delta = -delta
    r.word |= r.nxt << delta
    _rd_refill(r)
    r.avail = 32 - delta
    r.word |= r.nxt >> r.avail


cdef inline unsigned int _golomb_dec(Reader *r, const Family *f, unsigned int l) noexcept nogil:
    # golomb_decoding: a GR codeword (zeroprefix zeros, a one, l bits) when the window has
    # fewer than altprefixlen leading zeros, else a not-GR codeword of fixed length.
    cdef uint32_t bits = r.word
    cdef unsigned int zp, cwlen, v
    if bits > f.notgr_prefixmask[l]:
        zp = ryll_quic_clz(bits)         # bits != 0 here
        cwlen = zp + 1 + l               # <= altprefixlen + l <= 26
        v = (zp << l) | ((bits >> (32 - cwlen)) & BPPMASK[l])
    else:
        cwlen = f.notgr_cwlen[l]
        v = f.n_gr[l] + ((bits >> (32 - cwlen)) & f.notgr_suffixmask[l])
    _rd_eat(r, cwlen)
    return v & 0xff                      # quic.c stores it as a BYTE


cdef inline int _decode_run(Reader *r, State *st, int limit) noexcept nogil:
    # decode_state_run. Returns the run length, or -1 once it exceeds limit (quic.c reads on and
    # then fails with "wrong RLE"; stopping early keeps hostile all-ones input cheap).
    cdef int runlen = 0
    cdef int temp, hits
    while True:
        # leading ones of the window's top byte (8 when all ones), as quic.c's lzeroes[~top]
        temp = ryll_quic_clz((((~r.word) >> 24) << 24) | 0x00800000u)
        for hits in range(temp):
            runlen += st.melcorder
            if st.melcstate < MELCSTATES - 1:
                st.melcstate += 1
                st.melclen = J[st.melcstate]
                st.melcorder = 1u << st.melclen
        if runlen > limit:
            return -1
        if temp != 8:
            _rd_eat(r, temp + 1)
            break
        _rd_eat(r, 8)
    if st.melclen:
        runlen += r.word >> (32 - st.melclen)
        _rd_eat(r, st.melclen)
    if st.melcstate:
        st.melcstate -= 1
        st.melclen = J[st.melcstate]
        st.melcorder = 1u << st.melclen
    if runlen > limit:
        return -1
    return runlen


# ---------------------------------------------------------------------------------------------
# Decoder: quic_tmpl.c's uncompress_row0_seg / uncompress_row_seg / uncompress_row(0), for the
# three RGB channels (R at byte 2, G at 1, B at 0 of a BGRA pixel) and for one channel at a
# given byte offset (GRAY at 0, RGBA's alpha at 3). Channel values are the raw 5- or 8-bit
# values; RGB16 and GRAY are expanded to BGRA by the row post-pass in _decode.


cdef inline void _px(Reader *r, const Family *f, const Model *m, uint8_t *corr, int i,
                     uint8_t *dst, unsigned int pred) noexcept nogil:
    # One channel value: the code number comes from the bucket of the previous residual
    # (corr[i - 1]; i >= 0 and corr[-1] exists), the value is residual + prediction.
    cdef unsigned int v = _golomb_dec(r, f, m.bestcode[f.bucket_of[corr[i - 1]]])
    corr[i] = <uint8_t>v
    dst[0] = <uint8_t>((f.l2u[v] + pred) & f.mask)


cdef inline void _update3(Ctx *c, State *st, int idx) noexcept nogil:
    cdef const Family *f = c.fam
    cdef int k
    for k in range(3):
        _update_model(f, &c.models[k], f.bucket_of[c.corr[k][idx - 1]], c.corr[k][idx],
                      st.wm_trigger)


cdef inline void _update1(Ctx *c, State *st, int ch, int idx) noexcept nogil:
    cdef const Family *f = c.fam
    _update_model(f, &c.models[ch], f.bucket_of[c.corr[ch][idx - 1]], c.corr[ch][idx],
                  st.wm_trigger)


cdef inline bint _same3(const uint8_t *p, const uint8_t *q) noexcept nogil:
    return p[0] == q[0] and p[1] == q[1] and p[2] == q[2]


cdef int _rgb_seg0(Ctx *c, Reader *rp, uint8_t *cur, int i, int end,
                   unsigned int waitmask) noexcept nogil:
    cdef Reader r = rp[0]
    cdef State *st = &c.rgb
    cdef const Family *f = c.fam
    cdef uint8_t *cr = c.corr[0]
    cdef uint8_t *cg = c.corr[1]
    cdef uint8_t *cb = c.corr[2]
    cdef const Model *mr = &c.models[0]
    cdef const Model *mg = &c.models[1]
    cdef const Model *mb = &c.models[2]
    cdef uint8_t *p
    cdef uint8_t *a
    cdef int stopidx
    if i == 0:
        _px(&r, f, mr, cr, 0, cur + 2, 0)
        _px(&r, f, mg, cg, 0, cur + 1, 0)
        _px(&r, f, mb, cb, 0, cur, 0)
        if st.waitcnt:
            st.waitcnt -= 1
        else:
            st.waitcnt = _tabrand(st) & waitmask
            _update3(c, st, 0)
        i = 1
    stopidx = i + <int>st.waitcnt
    # 0 <= i < end <= width: p stays inside the row, p - 4 too since i >= 1.
    while i < end:
        p = cur + 4 * i
        a = p - 4
        _px(&r, f, mr, cr, i, p + 2, a[2])
        _px(&r, f, mg, cg, i, p + 1, a[1])
        _px(&r, f, mb, cb, i, p, a[0])
        if i == stopidx:
            _update3(c, st, i)
            stopidx = i + 1 + <int>(_tabrand(st) & waitmask)
        i += 1
    st.waitcnt = stopidx - end
    rp[0] = r
    return 0


cdef int _rgb_seg(Ctx *c, Reader *rp, const uint8_t *prev, uint8_t *cur, int i, int end,
                  unsigned int waitmask) noexcept nogil:
    cdef Reader r = rp[0]
    cdef State *st = &c.rgb
    cdef const Family *f = c.fam
    cdef uint8_t *cr = c.corr[0]
    cdef uint8_t *cg = c.corr[1]
    cdef uint8_t *cb = c.corr[2]
    cdef const Model *mr = &c.models[0]
    cdef const Model *mg = &c.models[1]
    cdef const Model *mb = &c.models[2]
    cdef uint8_t *p
    cdef uint8_t *a
    cdef const uint8_t *q
    cdef int stopidx, run_index = 0, runlen, run_end
    if i == 0:
        _px(&r, f, mr, cr, 0, cur + 2, prev[2])
        _px(&r, f, mg, cg, 0, cur + 1, prev[1])
        _px(&r, f, mb, cb, 0, cur, prev[0])
        if st.waitcnt:
            st.waitcnt -= 1
        else:
            st.waitcnt = _tabrand(st) & waitmask
            _update3(c, st, 0)
        i = 1
    stopidx = i + <int>st.waitcnt
    while True:
        while i < end:
            p = cur + 4 * i
            q = prev + 4 * i
            # RLE_PRED_IMP: i > 2 keeps p - 8 inside the row.
            if i > 2 and run_index != i and _same3(q - 4, q) and _same3(p - 4, p - 8):
                break
            a = p - 4
            _px(&r, f, mr, cr, i, p + 2, (a[2] + q[2]) >> 1)
            _px(&r, f, mg, cg, i, p + 1, (a[1] + q[1]) >> 1)
            _px(&r, f, mb, cb, i, p, (a[0] + q[0]) >> 1)
            if i == stopidx:
                _update3(c, st, i)
                stopidx = i + 1 + <int>(_tabrand(st) & waitmask)
            i += 1
        else:
            st.waitcnt = stopidx - end
            rp[0] = r
            return 0
        # do_run
        st.waitcnt = stopidx - i
        run_index = i
        runlen = _decode_run(&r, st, end - i)
        if runlen < 0:
            rp[0] = r
            return RC_RLE
        # i + runlen <= end <= width: the copies stay inside the row.
        run_end = i + runlen
        while i < run_end:
            ryll_quic_copy4(cur + 4 * i, cur + 4 * i - 4)
            i += 1
        if i == end:
            rp[0] = r
            return 0
        stopidx = i + <int>st.waitcnt


cdef int _one_seg0(Ctx *c, State *st, int ch, Reader *rp, uint8_t *cur, int i, int end,
                   unsigned int waitmask) noexcept nogil:
    # cur points at the channel's byte of pixel 0 (pixels are 4 bytes apart).
    cdef Reader r = rp[0]
    cdef const Family *f = c.fam
    cdef uint8_t *cc = c.corr[ch]
    cdef const Model *m = &c.models[ch]
    cdef int stopidx
    if i == 0:
        _px(&r, f, m, cc, 0, cur, 0)
        if st.waitcnt:
            st.waitcnt -= 1
        else:
            st.waitcnt = _tabrand(st) & waitmask
            _update1(c, st, ch, 0)
        i = 1
    stopidx = i + <int>st.waitcnt
    while i < end:
        _px(&r, f, m, cc, i, cur + 4 * i, cur[4 * i - 4])
        if i == stopidx:
            _update1(c, st, ch, i)
            stopidx = i + 1 + <int>(_tabrand(st) & waitmask)
        i += 1
    st.waitcnt = stopidx - end
    rp[0] = r
    return 0


cdef int _one_seg(Ctx *c, State *st, int ch, Reader *rp, const uint8_t *prev, uint8_t *cur,
                  int i, int end, unsigned int waitmask) noexcept nogil:
    cdef Reader r = rp[0]
    cdef const Family *f = c.fam
    cdef uint8_t *cc = c.corr[ch]
    cdef const Model *m = &c.models[ch]
    cdef int stopidx, run_index = 0, runlen, run_end, k
    if i == 0:
        _px(&r, f, m, cc, 0, cur, prev[0])
        if st.waitcnt:
            st.waitcnt -= 1
        else:
            st.waitcnt = _tabrand(st) & waitmask
            _update1(c, st, ch, 0)
        i = 1
    stopidx = i + <int>st.waitcnt
    while True:
        while i < end:
            k = 4 * i
            if i > 2 and run_index != i and prev[k - 4] == prev[k] and cur[k - 4] == cur[k - 8]:
                break
            _px(&r, f, m, cc, i, cur + k, (cur[k - 4] + prev[k]) >> 1)
            if i == stopidx:
                _update1(c, st, ch, i)
                stopidx = i + 1 + <int>(_tabrand(st) & waitmask)
            i += 1
        else:
            st.waitcnt = stopidx - end
            rp[0] = r
            return 0
        st.waitcnt = stopidx - i
        run_index = i
        runlen = _decode_run(&r, st, end - i)
        if runlen < 0:
            rp[0] = r
            return RC_RLE
        run_end = i + runlen
        while i < run_end:
            cur[4 * i] = cur[4 * i - 4]
            i += 1
        if i == end:
            rp[0] = r
            return 0
        stopidx = i + <int>st.waitcnt


cdef int _row(Ctx *c, State *st, bint rgb, int ch, Reader *r, const uint8_t *prev,
              uint8_t *cur, int width) noexcept nogil:
    # uncompress_row / uncompress_row0: split the row where the wait-mask index grows.
    # prev is NULL on row 0.
    cdef int pos = 0, rc = 0, n
    cdef unsigned int left = <unsigned int>width
    while DEFWMIMAX > st.wmidx and st.wmileft <= left:
        if st.wmileft:
            n = <int>st.wmileft
            rc = _seg(c, st, rgb, ch, r, prev, cur, pos, pos + n, BPPMASK[st.wmidx])
            if rc:
                return rc
            pos += n
            left -= n
        st.wmidx += 1
        _set_wm_trigger(st)
        st.wmileft = DEFWMINEXT
    if left:
        rc = _seg(c, st, rgb, ch, r, prev, cur, pos, pos + <int>left, BPPMASK[st.wmidx])
        if DEFWMIMAX > st.wmidx:
            st.wmileft -= left
    return rc


cdef inline int _seg(Ctx *c, State *st, bint rgb, int ch, Reader *r, const uint8_t *prev,
                     uint8_t *cur, int i, int end, unsigned int waitmask) noexcept nogil:
    if rgb:
        if prev == NULL:
            return _rgb_seg0(c, r, cur, i, end, waitmask)
        return _rgb_seg(c, r, prev, cur, i, end, waitmask)
    if prev == NULL:
        return _one_seg0(c, st, ch, r, cur + ch, i, end, waitmask)
    return _one_seg(c, st, ch, r, prev + ch, cur + ch, i, end, waitmask)


cdef uint8_t EXPAND5[32]
cdef int _k
for _k in range(32):
    # quic_tmpl.c QUIC_RGB16_TO_32: SET_x(pix, val) = (val << 3) | (val >> 2)
    EXPAND5[_k] = <uint8_t>((_k << 3) | (_k >> 2))


cdef void _finish_row(int qtype, uint8_t *row, int width) noexcept nogil:
    cdef int i
    cdef uint8_t *p
    if qtype == DEF_GRAY:
        for i in range(width):
            p = row + 4 * i
            p[1] = p[0]
            p[2] = p[0]
            p[3] = 255
    elif qtype == DEF_RGB16:
        for i in range(width):
            p = row + 4 * i
            p[0] = EXPAND5[p[0] & 31]    # values are < 32 already (masked on decode)
            p[1] = EXPAND5[p[1] & 31]
            p[2] = EXPAND5[p[2] & 31]
            p[3] = 255
    elif qtype != DEF_RGBA:
        for i in range(width):
            row[4 * i + 3] = 255


cdef int _decode(Ctx *c, Reader *r, int qtype, uint8_t *out, int width,
                 int height) noexcept nogil:
    cdef Py_ssize_t stride = 4 * <Py_ssize_t>width
    cdef bint rgb = qtype != DEF_GRAY
    cdef int nch = 1 if qtype == DEF_GRAY else (4 if qtype == DEF_RGBA else 3)
    cdef int row, k, rc
    cdef uint8_t *cur
    cdef uint8_t *prev = NULL
    c.fam = &FAM5 if qtype == DEF_RGB16 else &FAM8
    _state_reset(&c.rgb)
    for k in range(4):
        _state_reset(&c.chan[k])
        _model_reset(&c.models[k], c.fam.bpc)
    for row in range(height):
        cur = out + row * stride
        for k in range(nch):
            # correlate_row[-1]: 0 on row 0, else the previous row's first residual
            (c.corr[k] - 1)[0] = 0 if row == 0 else c.corr[k][0]
        if rgb:
            rc = _row(c, &c.rgb, True, 0, r, prev, cur, width)
            if rc == 0 and qtype == DEF_RGBA:
                rc = _row(c, &c.chan[3], False, 3, r, prev, cur, width)
        else:
            rc = _row(c, &c.chan[0], False, 0, r, prev, cur, width)
        if r.truncated:
            return RC_TRUNCATED
        if rc:
            return rc
        if qtype == DEF_RGB16:
            # the 5-bit values of this row are the next row's predictors: expand one row late
            if prev != NULL:
                _finish_row(qtype, prev, width)
        else:
            _finish_row(qtype, cur, width)
        prev = cur
    if qtype == DEF_RGB16:
        _finish_row(qtype, prev, width)
    return RC_OK


def decode(const uint8_t[::1] data, uint8_t[::1] out, int qtype, int width, int height):
    """Decodes a QUIC image whose 20-byte header the caller has validated (magic, version,
    qtype in 1..5, 0 < width, height, len(data) >= 20) into out[:width * height * 4] as BGRA.

    Returns OK (0), ERR_TRUNCATED or ERR_RLE. Runs without the GIL.
    """
    if qtype < DEF_GRAY or qtype > DEF_RGBA or width <= 0 or height <= 0:
        raise ValueError("bad QUIC parameters")
    if data.shape[0] < 20:
        raise ValueError("QUIC data shorter than its header")
    cdef Py_ssize_t need = <Py_ssize_t>width * height * 4
    if out.shape[0] < need:
        raise ValueError("output buffer too small")
    cdef Ctx *c = <Ctx *>malloc(sizeof(Ctx))
    cdef uint8_t *corr = <uint8_t *>malloc(4 * (<Py_ssize_t>width + 1))
    cdef Reader r
    cdef int k, rc
    if c == NULL or corr == NULL:
        free(c)
        free(corr)
        raise MemoryError()
    memset(corr, 0, 4 * (<Py_ssize_t>width + 1))
    for k in range(4):
        c.corr[k] = corr + k * (<Py_ssize_t>width + 1) + 1
    r.data = &data[0]
    r.nwords = data.shape[0] // 4
    r.pos = 5                           # after magic, version, type, width, height
    r.truncated = 0
    _rd_refill(&r)                      # init_decode_io after five decode_eat32bits
    r.word = r.nxt
    r.avail = 0
    cdef uint8_t *dst = &out[0]
    try:
        with nogil:
            rc = _decode(c, &r, qtype, dst, width, height)
    finally:
        free(c)
        free(corr)
    return rc


# ---------------------------------------------------------------------------------------------
# Encoder: quic.c's quic_encode and quic_tmpl.c's compress_row0_seg / compress_row_seg, for
# tests and benchmarks (the server is the real producer). It is written in the same shape as
# the C encoder, not as an inverse of the decoder above, and reads "raw" channel values: the
# 8-bit bytes, or for RGB16 the 5-bit values (quic.py passes pixel >> 3, like quic.c's
# QUIC_RGB16_TO_32 GET_x). Not tuned for speed.


cdef inline void _wr_word(Writer *w) noexcept nogil:
    # write_io_word; cap is computed from a worst-case bit count, overflow is a safety net.
    if w.pos < w.cap:
        w.out[4 * w.pos] = <uint8_t>(w.word & 0xff)
        w.out[4 * w.pos + 1] = <uint8_t>((w.word >> 8) & 0xff)
        w.out[4 * w.pos + 2] = <uint8_t>((w.word >> 16) & 0xff)
        w.out[4 * w.pos + 3] = <uint8_t>(w.word >> 24)
        w.pos += 1
    else:
        w.overflow = 1


cdef inline void _wr_put(Writer *w, uint32_t word, int n) noexcept nogil:
    # encode(): 1 <= n <= 31, word < 2^n
    cdef int delta = w.avail - n
    if delta >= 0:
        w.avail = delta
        w.word |= word << delta
        return
    delta = -delta
    w.word |= word >> delta
    _wr_word(w)
    w.avail = 32 - delta
    w.word = word << w.avail


cdef inline void _wr_put32(Writer *w, uint32_t word) noexcept nogil:
    _wr_put(w, word >> 16, 16)
    _wr_put(w, word & 0xffff, 16)


cdef void _encode_run(Writer *w, State *st, unsigned int runlen) noexcept nogil:
    # encode_state_run
    cdef unsigned int hits = 0, k
    while runlen >= st.melcorder:
        hits += 1
        runlen -= st.melcorder
        if st.melcstate < MELCSTATES - 1:
            st.melcstate += 1
            st.melclen = J[st.melcstate]
            st.melcorder = 1u << st.melclen
    for k in range(hits >> 5):               # encode_ones
        _wr_put32(w, 0xffffffffu)
    if hits & 31:
        _wr_put(w, (1u << (hits & 31)) - 1, hits & 31)
    _wr_put(w, runlen, st.melclen + 1)
    if st.melcstate:
        st.melcstate -= 1
        st.melclen = J[st.melcstate]
        st.melcorder = 1u << st.melclen


cdef inline bint _enc_same(const uint8_t *row, int nch, const int *offs, int i,
                           int j) noexcept nogil:
    cdef int k
    for k in range(nch):
        if row[4 * i + offs[k]] != row[4 * j + offs[k]]:
            return False
    return True


cdef inline void _enc_px(Ctx *c, Writer *w, int ch, int i, unsigned int value,
                         unsigned int pred) noexcept nogil:
    cdef const Family *f = c.fam
    cdef uint8_t *corr = c.corr[ch]
    cdef unsigned int l = c.models[ch].bestcode[f.bucket_of[corr[i - 1]]]
    cdef unsigned int n = f.u2l[(value - pred) & f.mask]
    corr[i] = <uint8_t>n
    _wr_put(w, f.code[n * 8 + l], f.code_len[n * 8 + l])


cdef void _enc_pixel(Ctx *c, Writer *w, int nch, const int *offs, const int *chans,
                     const uint8_t *prev, const uint8_t *cur, int i) noexcept nogil:
    cdef int k, o
    cdef unsigned int pred
    for k in range(nch):
        o = offs[k]
        if prev == NULL:
            pred = 0 if i == 0 else cur[4 * i - 4 + o]            # DECORRELATE_0
        elif i == 0:
            pred = prev[o]                                         # COMPRESS_ONE_0
        else:
            pred = (cur[4 * i - 4 + o] + prev[4 * i + o]) >> 1     # DECORRELATE
        _enc_px(c, w, chans[k], i, cur[4 * i + o], pred)


cdef void _enc_update(Ctx *c, State *st, int nch, const int *chans, int idx) noexcept nogil:
    cdef int k
    for k in range(nch):
        _update1(c, st, chans[k], idx)


cdef void _enc_seg(Ctx *c, State *st, Writer *w, int nch, const int *offs, const int *chans,
                   const uint8_t *prev, const uint8_t *cur, int i, int end,
                   unsigned int waitmask) noexcept nogil:
    cdef int stopidx, run_index = 0
    cdef unsigned int run_size
    if i == 0:
        _enc_pixel(c, w, nch, offs, chans, prev, cur, 0)
        if st.waitcnt:
            st.waitcnt -= 1
        else:
            st.waitcnt = _tabrand(st) & waitmask
            _enc_update(c, st, nch, chans, 0)
        i = 1
    stopidx = i + <int>st.waitcnt
    while True:
        while i < end:
            if (prev != NULL and i > 2 and run_index != i
                    and _enc_same(prev, nch, offs, i - 1, i)
                    and _enc_same(cur, nch, offs, i - 1, i - 2)):
                break
            _enc_pixel(c, w, nch, offs, chans, prev, cur, i)
            if i == stopidx:
                _enc_update(c, st, nch, chans, i)
                stopidx = i + 1 + <int>(_tabrand(st) & waitmask)
            i += 1
        else:
            st.waitcnt = stopidx - end
            return
        # do_run
        run_index = i
        st.waitcnt = stopidx - i
        run_size = 0
        while _enc_same(cur, nch, offs, i, i - 1):
            run_size += 1
            i += 1
            if i == end:
                _encode_run(w, st, run_size)
                return
        _encode_run(w, st, run_size)
        stopidx = i + <int>st.waitcnt


cdef void _enc_row(Ctx *c, State *st, Writer *w, int nch, const int *offs, const int *chans,
                   const uint8_t *prev, const uint8_t *cur, int width) noexcept nogil:
    # compress_row / compress_row0
    cdef int pos = 0, n
    cdef unsigned int left = <unsigned int>width
    while DEFWMIMAX > st.wmidx and st.wmileft <= left:
        if st.wmileft:
            n = <int>st.wmileft
            _enc_seg(c, st, w, nch, offs, chans, prev, cur, pos, pos + n, BPPMASK[st.wmidx])
            pos += n
            left -= n
        st.wmidx += 1
        _set_wm_trigger(st)
        st.wmileft = DEFWMINEXT
    if left:
        _enc_seg(c, st, w, nch, offs, chans, prev, cur, pos, pos + <int>left,
                 BPPMASK[st.wmidx])
        if DEFWMIMAX > st.wmidx:
            st.wmileft -= left


def encode(const uint8_t[::1] raw, int qtype, int width, int height):
    """Encodes raw channel values laid out as BGRA (width * height * 4 bytes; RGB in bytes
    2, 1, 0, alpha in 3, GRAY in 0; 5-bit values for RGB16) as a QUIC image; returns bytes."""
    if qtype < DEF_GRAY or qtype > DEF_RGBA or width <= 0 or height <= 0:
        raise ValueError("bad QUIC parameters")
    cdef Py_ssize_t npix = <Py_ssize_t>width * height
    if raw.shape[0] < npix * 4:
        raise ValueError("raw buffer too small")
    cdef int nch = 1 if qtype == DEF_GRAY else (4 if qtype == DEF_RGBA else 3)
    # worst case per pixel: a 26-bit code per channel, plus one run code (<= 17 bits here, the
    # hits being at most one per run pixel) per pixel
    cdef Py_ssize_t cap = 8 + (npix * (nch * 26 + 18)) // 32
    out = bytearray(cap * 4)
    cdef uint8_t[::1] outv = out
    cdef Ctx *c = <Ctx *>malloc(sizeof(Ctx))
    cdef uint8_t *corr = <uint8_t *>malloc(4 * (<Py_ssize_t>width + 1))
    if c == NULL or corr == NULL:
        free(c)
        free(corr)
        raise MemoryError()
    cdef Writer w
    cdef int k, row
    cdef int rgb_offs[3]
    cdef int rgb_chans[3]
    cdef int one_offs[1]
    cdef int one_chans[1]
    rgb_offs[0] = 2
    rgb_offs[1] = 1
    rgb_offs[2] = 0
    rgb_chans[0] = 0
    rgb_chans[1] = 1
    rgb_chans[2] = 2
    one_offs[0] = 3 if qtype == DEF_RGBA else 0
    one_chans[0] = 3 if qtype == DEF_RGBA else 0
    cdef const uint8_t *src = &raw[0]
    cdef const uint8_t *cur
    cdef const uint8_t *prev = NULL
    cdef Py_ssize_t stride = 4 * <Py_ssize_t>width
    w.out = &outv[0]
    w.cap = cap
    w.pos = 0
    w.word = 0
    w.avail = 32
    w.overflow = 0
    memset(corr, 0, 4 * (<Py_ssize_t>width + 1))
    for k in range(4):
        c.corr[k] = corr + k * (<Py_ssize_t>width + 1) + 1
    try:
        with nogil:
            c.fam = &FAM5 if qtype == DEF_RGB16 else &FAM8
            _state_reset(&c.rgb)
            for k in range(4):
                _state_reset(&c.chan[k])
                _model_reset(&c.models[k], c.fam.bpc)
            _wr_put32(&w, 0x43495551u)
            _wr_put32(&w, 0)
            _wr_put32(&w, <uint32_t>qtype)
            _wr_put32(&w, <uint32_t>width)
            _wr_put32(&w, <uint32_t>height)
            for row in range(height):
                cur = src + row * stride
                for k in range(nch):
                    (c.corr[k] - 1)[0] = 0 if row == 0 else c.corr[k][0]
                if qtype == DEF_GRAY:
                    _enc_row(c, &c.chan[0], &w, 1, one_offs, one_chans, prev, cur, width)
                else:
                    _enc_row(c, &c.rgb, &w, 3, rgb_offs, rgb_chans, prev, cur, width)
                    if qtype == DEF_RGBA:
                        _enc_row(c, &c.chan[3], &w, 1, one_offs, one_chans, prev, cur, width)
                prev = cur
            # flush()
            if w.avail > 0 and w.avail != 32:
                _wr_put(&w, 0, w.avail)
            _wr_put32(&w, 0)
            _wr_put(&w, 0, 1)
    finally:
        free(c)
        free(corr)
    if w.overflow:
        raise RuntimeError("QUIC encoder output bound exceeded")
    return bytes(out[: 4 * w.pos])
