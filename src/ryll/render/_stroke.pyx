# cython: language_level=3, cdivision=True
"""Compiled core of DRAW_STROKE: spice-common's thin-line rasterisers (common/lines.c, X11's
``mi`` line code) and its bezier flattening (canvas_base.c ``subdivide_bezier``).

spice-common strokes every path with a zero line width (``gc.base.lineWidth = 0``, cap style
CapNotLast, join style JoinMiter):

- solid lines go through ``miZeroLine``: per segment, Bresenham from the first point, the last
  point not drawn, ties on the minor axis resolved by the default bias (octants 2, 3, 4, 5
  prefer the axial step). ``miZeroLine`` clips with ``miZeroClipLine``, whose design is to
  draw exactly the pixels of the unclipped line inside the clip; here each segment's pixel i
  is computed in closed form, ``minor = round(i * d_minor / d_major)`` with the bias picking
  the tie, and only the indices that fall inside the draw's extents are visited, so a line
  from far outside costs what its visible part costs;
- dashed lines go through ``miZeroDashLine``, which is ``miWideDash`` with a line width of 1:
  each "on" dash is a width-1 polygon scan-converted by ``miFillPolyHelper`` (edges from
  ``miPolyBuildPoly`` / ``miPolyBuildEdge``), consecutive "on" segments get a miter join
  (``miLineJoin``, bevel past the miter limit). With a rop that must touch each pixel once
  (``miSpansCarefulRop``) and at least 3 points, the polyline's spans are gathered and merged
  (a pixel set, ``self.mask``) before being filled; otherwise every polygon is filled as it
  comes.

The rasteriser does not write pixels: it counts, in ``hits`` (an int32 array over the draw's
extents), how many times spice-common would apply the rop to each pixel. The Python side
applies it (applying a bitwise rop an even number of times differs from applying it once only
for the rops that invert dest, the "careful" ones).

Integers are int64 and products are exact where lines.c uses C ints, so coordinates far
outside a 16-bit range (where lines.c's int arithmetic overflows) give the mathematically
right pixels rather than lines.c's. The bezier flattening reproduces canvas_base.c's
arithmetic exactly, including its int32/int64 wrap-around.

Every loop is bounded: ``budget`` is charged per segment, per dash, per polygon row and per
visited pixel, and a function returns ``E_BUDGET`` instead of going on once it runs out.
"""

from libc.math cimport hypot
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t

import numpy as np

cimport numpy as cnp

cnp.import_array()

OK = 0
E_BUDGET = 1

# lines.c DEFAULTZEROLINEBIAS: OCTANT2 | OCTANT3 | OCTANT4 | OCTANT5, octants numbered by
# their XDECREASING (4) | YDECREASING (2) | YMAJOR (1) bits.
cdef enum:
    XDECREASING = 4
    YDECREASING = 2
    YMAJOR = 1
    BIAS = (1 << 3) | (1 << 7) | (1 << 6) | (1 << 4)

# lines.c SQSECANT: the miter limit constant.
cdef double SQSECANT = 108.856472512142

cdef enum:
    V_TOP = 0
    V_RIGHT = 1
    V_BOTTOM = 2
    V_LEFT = 3


cdef struct Vertex:
    double x
    double y


cdef struct Slope:
    int64_t dx
    int64_t dy
    double k


cdef struct Edge:
    int64_t height
    int64_t x
    int64_t stepx
    int64_t signdx
    int64_t e
    int64_t dy
    int64_t dx


cdef struct Face:
    double xa
    double ya
    int64_t dx
    int64_t dy
    int64_t x
    int64_t y
    double k


cdef inline int64_t iceil(double x):
    """lines.c ICEIL."""
    cdef int64_t t = <int64_t>x
    if x == <double>t or x < 0.0:
        return t
    return t + 1


cdef inline int step_around(int v, int incr, int count):
    """lines.c StepAround."""
    if v + incr < 0:
        return count - 1
    if v + incr == count:
        return 0
    return v + incr


cdef int64_t build_edge(double y0, double k, int64_t dx, int64_t dy, int64_t xi, int64_t yi,
                        int left, Edge *edge):
    """lines.c miPolyBuildEdge (x0 is unused there too)."""
    cdef int64_t x, y, e, xady
    if dy < 0:
        dy = -dy
        dx = -dx
        k = -k
    y = iceil(y0)
    xady = iceil(k) + y * dx
    if xady <= 0:
        x = -(-xady // dy) - 1
    else:
        x = (xady - 1) // dy
    e = xady - x * dy
    if dx >= 0:
        edge.signdx = 1
        edge.stepx = dx // dy
        edge.dx = dx % dy
    else:
        edge.signdx = -1
        edge.stepx = -(-dx // dy)
        edge.dx = -dx % dy
        e = dy - e + 1
    edge.dy = dy
    edge.x = x + left + xi
    edge.e = e - dy
    return y + yi


cdef int64_t build_poly(Vertex *vertices, Slope *slopes, int count, int64_t xi, int64_t yi,
                        Edge *left, Edge *right, int *pnleft, int *pnright, int64_t *h):
    """lines.c miPolyBuildPoly."""
    cdef int top = 0, bottom = 0, i, s, clockwise = 1, slopeoff = 0, nright = 0, nleft = 0
    cdef double miny, maxy
    cdef int64_t y, lasty = 0, bottomy, topy = 0
    miny = maxy = vertices[0].y
    for i in range(1, count):
        if vertices[i].y < miny:
            top = i
            miny = vertices[i].y
        if vertices[i].y >= maxy:
            bottom = i
            maxy = vertices[i].y
    i = top
    s = step_around(top, -1, count)
    if slopes[s].dy * slopes[i].dx > slopes[i].dy * slopes[s].dx:
        clockwise = -1
        slopeoff = -1
    bottomy = iceil(maxy) + yi
    s = step_around(top, slopeoff, count)
    i = top
    while i != bottom:
        if slopes[s].dy != 0:
            y = build_edge(vertices[i].y, slopes[s].k, slopes[s].dx, slopes[s].dy, xi, yi, 0,
                           &right[nright])
            if nright != 0:
                right[nright - 1].height = y - lasty
            else:
                topy = y
            nright += 1
            lasty = y
        i = step_around(i, clockwise, count)
        s = step_around(s, clockwise, count)
    if nright != 0:
        right[nright - 1].height = bottomy - lasty
    slopeoff = -1 if slopeoff == 0 else 0
    s = step_around(top, slopeoff, count)
    i = top
    while i != bottom:
        if slopes[s].dy != 0:
            y = build_edge(vertices[i].y, slopes[s].k, slopes[s].dx, slopes[s].dy, xi, yi, 1,
                           &left[nleft])
            if nleft != 0:
                left[nleft - 1].height = y - lasty
            nleft += 1
            lasty = y
        i = step_around(i, -clockwise, count)
        s = step_around(s, -clockwise, count)
    if nleft != 0:
        left[nleft - 1].height = bottomy - lasty
    pnleft[0] = nleft
    pnright[0] = nright
    h[0] = bottomy - topy
    return topy


cdef class Raster:
    """Hit counts over the extents [top, bottom) x [left, right) of a draw."""

    cdef readonly int64_t top, left, bottom, right
    cdef public int64_t budget
    cdef readonly object hits_array
    cdef int32_t[:, ::1] hits
    cdef cnp.uint8_t[:, ::1] mask
    cdef object mask_array
    cdef bint unique  # spans go to the merged set (miSetupSpanData gave span data)
    cdef bint mask_dirty
    # The rows and columns the merged set touched since the last flush: the flush scans only
    # them (and is charged for them), never the whole raster per polyline.
    cdef int64_t dirty_r0, dirty_r1, dirty_c0, dirty_c1
    # the dash state of the current polyline
    cdef cnp.uint8_t[::1] dash
    cdef int ndash

    def __cinit__(self, int64_t top, int64_t left, int64_t bottom, int64_t right,
                  int64_t budget):
        if bottom <= top or right <= left:
            raise ValueError("empty raster")
        self.top, self.left, self.bottom, self.right = top, left, bottom, right
        self.budget = budget
        self.hits_array = np.zeros((bottom - top, right - left), np.int32)
        self.hits = self.hits_array
        self.mask_array = None
        self.unique = False
        self.mask_dirty = False
        self.ndash = 0

    # --- spans ------------------------------------------------------------------------

    cdef inline void span(self, int64_t y, int64_t x, int64_t w):
        """One span, clipped to the extents (spice_canvas_clip_spans does the rest)."""
        cdef int64_t x0 = x, x1 = x + w, r = y - self.top, c
        if y < self.top or y >= self.bottom:
            return
        if x0 < self.left:
            x0 = self.left
        if x1 > self.right:
            x1 = self.right
        if x0 >= x1:
            return
        if self.unique:
            for c in range(x0 - self.left, x1 - self.left):
                self.mask[r, c] = 1
            if not self.mask_dirty:
                self.dirty_r0, self.dirty_r1 = r, r + 1
                self.dirty_c0, self.dirty_c1 = x0 - self.left, x1 - self.left
                self.mask_dirty = True
            else:
                if r < self.dirty_r0:
                    self.dirty_r0 = r
                if r + 1 > self.dirty_r1:
                    self.dirty_r1 = r + 1
                if x0 - self.left < self.dirty_c0:
                    self.dirty_c0 = x0 - self.left
                if x1 - self.left > self.dirty_c1:
                    self.dirty_c1 = x1 - self.left
        else:
            for c in range(x0 - self.left, x1 - self.left):
                self.hits[r, c] += 1

    cdef int flush_unique(self):
        """miFillUniqueSpanGroup: the merged spans, each pixel once. Scans the rows and
        columns the spans touched, charged to the budget."""
        cdef Py_ssize_t r, c
        if not self.mask_dirty:
            return OK
        self.mask_dirty = False
        self.budget -= (self.dirty_r1 - self.dirty_r0) * (self.dirty_c1 - self.dirty_c0)
        if self.budget < 0:
            return E_BUDGET  # the raster is dropped with its mask: nothing to clean up
        for r in range(self.dirty_r0, self.dirty_r1):
            for c in range(self.dirty_c0, self.dirty_c1):
                if self.mask[r, c]:
                    self.hits[r, c] += 1
                    self.mask[r, c] = 0
        return OK

    # --- miZeroLine -------------------------------------------------------------------

    cdef int zero_segment(self, int64_t x1, int64_t y1, int64_t x2, int64_t y2):
        cdef int64_t adx = x2 - x1, ady = y2 - y1, sx = 1, sy = 1, i, lo, hi, major
        cdef int64_t num, den, x, y
        cdef int octant = 0, fix
        if adx < 0:
            adx = -adx
            sx = -1
            octant |= XDECREASING
        if ady < 0:
            ady = -ady
            sy = -1
            octant |= YDECREASING
        self.budget -= 1
        if adx > ady:
            fix = (BIAS >> octant) & 1
            # pixels i = 0 .. adx - 1 (CapNotLast: the end point is not drawn)
            if sx > 0:
                lo, hi = self.left - x1, self.right - x1
            else:
                lo, hi = x1 - self.right + 1, x1 - self.left + 1
            if lo < 0:
                lo = 0
            if hi > adx:
                hi = adx
            if lo >= hi:
                return OK
            self.budget -= hi - lo
            if self.budget < 0:
                return E_BUDGET
            den = 2 * adx
            for i in range(lo, hi):
                num = 2 * ady * i + adx - fix
                y = y1 + sy * (num // den)
                if self.top <= y < self.bottom:
                    self.hits[y - self.top, x1 + sx * i - self.left] += 1
        else:
            octant |= YMAJOR
            fix = (BIAS >> octant) & 1
            if sy > 0:
                lo, hi = self.top - y1, self.bottom - y1
            else:
                lo, hi = y1 - self.bottom + 1, y1 - self.top + 1
            if lo < 0:
                lo = 0
            if hi > ady:
                hi = ady
            if lo >= hi:
                return OK
            self.budget -= hi - lo
            if self.budget < 0:
                return E_BUDGET
            den = 2 * ady
            for i in range(lo, hi):
                num = 2 * adx * i + ady - fix
                x = x1 + sx * (num // den)
                if self.left <= x < self.right:
                    self.hits[y1 + sy * i - self.top, x - self.left] += 1
        return OK

    def selected(self, object region_mask, bint careful):
        """Where the rop goes: None when nothing was hit (inside ``region_mask``, an (h, w)
        bool array of the extents or None), else ``(top, left, bottom, right, once,
        twice)``: the hit pixels' bounding box in the extents' coordinates, the box's
        pixels hit at all, and (``careful`` rops, which differ between one application and
        two) those hit an even number of times, else None. Every rop is bitwise with the
        brush fixed per pixel, so n applications are one (n odd) or two (n even). numpy
        passes over the counts (a few per pixel, vectorised): a loop here, bounds-checked,
        cost five times as much."""
        hits = self.hits_array
        hit = hits > 0
        if region_mask is not None:
            if region_mask.shape != hit.shape:
                raise ValueError("the region mask is not the raster's shape")
            hit &= region_mask
        rows = np.flatnonzero(hit.any(axis=1))
        if rows.size == 0:
            return None
        r0, r1 = int(rows[0]), int(rows[-1]) + 1
        cols = np.flatnonzero(hit[r0:r1].any(axis=0))
        c0, c1 = int(cols[0]), int(cols[-1]) + 1
        once = np.ascontiguousarray(hit[r0:r1, c0:c1])
        twice = None
        if careful:
            odd = np.bitwise_and(hits[r0:r1, c0:c1], 1, dtype=np.uint8, casting="unsafe")
            twice = np.greater(once, odd.view(np.bool_))  # hit, an even number of times
        return r0, c0, r1, c1, once, twice

    def zero_line(self, cnp.int64_t[:, ::1] pts):
        """lines.c miZeroLine over one polyline (CoordModeOrigin, CapNotLast)."""
        cdef Py_ssize_t j
        self.unique = False
        for j in range(1, pts.shape[0]):
            if self.zero_segment(pts[j - 1, 0], pts[j - 1, 1], pts[j, 0], pts[j, 1]) != OK:
                return E_BUDGET
            if self.budget < 0:
                return E_BUDGET
        return OK

    # --- miWideDash with lineWidth 1 --------------------------------------------------

    cdef int fill_poly(self, int64_t y, Edge *left, Edge *right, int left_count,
                       int right_count):
        """lines.c miFillPolyHelper."""
        cdef int64_t left_x = 0, left_e = 0, left_stepx = 0, left_signdx = 0
        cdef int64_t left_dy = 0, left_dx = 0
        cdef int64_t right_x = 0, right_e = 0, right_stepx = 0, right_signdx = 0
        cdef int64_t right_dy = 0, right_dx = 0
        cdef int64_t height, left_height = 0, right_height = 0
        cdef int li = 0, ri = 0
        while (left_count or left_height) and (right_count or right_height):
            if not left_height and left_count:
                left_height = left[li].height
                left_x = left[li].x
                left_stepx = left[li].stepx
                left_signdx = left[li].signdx
                left_e = left[li].e
                left_dy = left[li].dy
                left_dx = left[li].dx
                left_count -= 1
                li += 1
            if not right_height and right_count:
                right_height = right[ri].height
                right_x = right[ri].x
                right_stepx = right[ri].stepx
                right_signdx = right[ri].signdx
                right_e = right[ri].e
                right_dy = right[ri].dy
                right_dx = right[ri].dx
                right_count -= 1
                ri += 1
            height = left_height
            if height > right_height:
                height = right_height
            left_height -= height
            right_height -= height
            if height > 0:
                self.budget -= height
                if self.budget < 0:
                    return E_BUDGET
            while height > 0:
                height -= 1
                if right_x >= left_x:
                    self.span(y, left_x, right_x - left_x + 1)
                y += 1
                left_x += left_stepx
                left_e += left_dx
                if left_e > 0:
                    left_x += left_signdx
                    left_e -= left_dy
                right_x += right_stepx
                right_e += right_dx
                if right_e > 0:
                    right_x += right_signdx
                    right_e -= right_dy
        return OK

    cdef int poly(self, Vertex *vertices, Slope *slopes, int count, int64_t xi, int64_t yi):
        cdef Edge left[4]
        cdef Edge right[4]
        cdef int nleft, nright
        cdef int64_t h, y
        y = build_poly(vertices, slopes, count, xi, yi, left, right, &nleft, &nright, &h)
        return self.fill_poly(y, left, right, nleft, nright)

    cdef void step_dash(self, int64_t dist, int *pindex, int64_t *poffset):
        """lines.c miStepDash (the dash list has a non-zero total, checked by the caller)."""
        cdef int index = pindex[0], i
        cdef int64_t offset = poffset[0], total = 0
        if dist < self.dash[index] - offset:
            poffset[0] = offset + dist
            return
        dist -= self.dash[index] - offset
        index += 1
        if index == self.ndash:
            index = 0
        for i in range(self.ndash):
            total += self.dash[i]
        if total > 0 and total <= dist:
            dist = dist % total
        while dist >= self.dash[index]:
            dist -= self.dash[index]
            index += 1
            if index == self.ndash:
                index = 0
        pindex[0] = index
        poffset[0] = dist

    cdef int join(self, Face *pleft, Face *pright):
        """lines.c miLineJoin for lineWidth 1, JoinMiter (bevel past the miter limit)."""
        cdef double mx = 0, my = 0, denom, scale, ddx, ddy, adx, ady
        cdef Vertex vertices[4]
        cdef Slope slopes[4]
        cdef int edgecount, swapslopes = 0, miter = 1
        denom = -pleft.dx * <double>pright.dy + pright.dx * <double>pleft.dy
        if not self.unique:
            # "See if one of the lines will draw the joining pixel"
            if pleft.dx > 0 or (pleft.dx == 0 and pleft.dy > 0):
                return OK
            if pright.dx > 0 or (pright.dx == 0 and pright.dy > 0):
                return OK
        if denom == 0:
            return OK
        if denom > 0:
            pleft.xa = -pleft.xa
            pleft.ya = -pleft.ya
            pleft.dx = -pleft.dx
            pleft.dy = -pleft.dy
        else:
            swapslopes = 1
            pright.xa = -pright.xa
            pright.ya = -pright.ya
            pright.dx = -pright.dx
            pright.dy = -pright.dy
        vertices[0].x = pright.xa
        vertices[0].y = pright.ya
        slopes[0].dx = -pright.dy
        slopes[0].dy = pright.dx
        slopes[0].k = 0
        vertices[1].x = 0
        vertices[1].y = 0
        slopes[1].dx = pleft.dy
        slopes[1].dy = -pleft.dx
        slopes[1].k = 0
        vertices[2].x = pleft.xa
        vertices[2].y = pleft.ya
        my = (pleft.dy * (pright.xa * pright.dy - pright.ya * pright.dx)
              - pright.dy * (pleft.xa * pleft.dy - pleft.ya * pleft.dx)) / denom
        if pleft.dy != 0:
            mx = pleft.xa + (my - pleft.ya) * <double>pleft.dx / <double>pleft.dy
        else:
            mx = pright.xa + (my - pright.ya) * <double>pright.dx / <double>pright.dy
        if (mx * mx + my * my) * 4 > SQSECANT:
            miter = 0
        if miter:
            slopes[2].dx = pleft.dx
            slopes[2].dy = pleft.dy
            slopes[2].k = pleft.k
            if swapslopes:
                slopes[2].dx = -slopes[2].dx
                slopes[2].dy = -slopes[2].dy
                slopes[2].k = -slopes[2].k
            vertices[3].x = mx
            vertices[3].y = my
            slopes[3].dx = pright.dx
            slopes[3].dy = pright.dy
            slopes[3].k = pright.k
            if swapslopes:
                slopes[3].dx = -slopes[3].dx
                slopes[3].dy = -slopes[3].dy
                slopes[3].k = -slopes[3].k
            edgecount = 4
        else:
            adx = ddx = pright.xa - pleft.xa
            ady = ddy = pright.ya - pleft.ya
            if adx < 0:
                adx = -adx
            if ady < 0:
                ady = -ady
            scale = ady
            if adx > ady:
                scale = adx
            if scale == 0:
                return OK
            slopes[2].dx = <int64_t>((ddx * 65536) / scale)
            slopes[2].dy = <int64_t>((ddy * 65536) / scale)
            slopes[2].k = ((pleft.xa + pright.xa) * slopes[2].dy
                           - (pleft.ya + pright.ya) * slopes[2].dx) / 2.0
            edgecount = 3
        return self.poly(vertices, slopes, edgecount, pleft.x, pleft.y)

    cdef int dash_segment(self, int64_t *pdash_offset, int *pdash_index, int64_t x1,
                          int64_t y1, int64_t x2, int64_t y2, Face *left_face,
                          Face *right_face):
        """lines.c miWideDashSegment for lineWidth 1, LineOnOffDash, CapNotLast."""
        cdef int64_t dx = x2 - x1, dy = y2 - y1, dash_remain
        cdef int dash_index = pdash_index[0]
        cdef double L, l = 0.5, k, rdx, rdy, r, l_remain, dash_dx, dash_dy
        cdef Vertex vertices[4]
        cdef Slope slopes[4]
        dash_remain = self.dash[dash_index] - pdash_offset[0]
        if dx == 0:
            L = dy
            rdx = 0
            rdy = l
            if dy < 0:
                L = -dy
                rdy = -l
        elif dy == 0:
            L = dx
            rdx = l
            rdy = 0
            if dx < 0:
                L = -dx
                rdx = -l
        else:
            L = hypot(<double>dx, <double>dy)
            r = l / L
            rdx = r * dx
            rdy = r * dy
        k = l * L
        l_remain = L
        slopes[V_TOP].dx = dx
        slopes[V_TOP].dy = dy
        slopes[V_TOP].k = k
        slopes[V_RIGHT].dx = -dy
        slopes[V_RIGHT].dy = dx
        slopes[V_RIGHT].k = 0
        slopes[V_BOTTOM].dx = -dx
        slopes[V_BOTTOM].dy = -dy
        slopes[V_BOTTOM].k = k
        slopes[V_LEFT].dx = dy
        slopes[V_LEFT].dy = -dx
        slopes[V_LEFT].k = 0
        vertices[V_RIGHT].x = vertices[V_TOP].x = rdy
        vertices[V_RIGHT].y = vertices[V_TOP].y = -rdx
        vertices[V_BOTTOM].x = vertices[V_LEFT].x = -rdy
        vertices[V_BOTTOM].y = vertices[V_LEFT].y = rdx
        while l_remain > dash_remain:
            self.budget -= 1
            if self.budget < 0:
                return E_BUDGET
            dash_dx = (dash_remain * dx) / L
            dash_dy = (dash_remain * dy) / L
            vertices[V_RIGHT].x += dash_dx
            vertices[V_RIGHT].y += dash_dy
            vertices[V_BOTTOM].x += dash_dx
            vertices[V_BOTTOM].y += dash_dy
            slopes[V_RIGHT].k = vertices[V_RIGHT].x * dx + vertices[V_RIGHT].y * dy
            if not (dash_index & 1):
                if self.poly(vertices, slopes, 4, x1, y1) != OK:
                    return E_BUDGET
            l_remain -= dash_remain
            dash_index += 1
            if dash_index == self.ndash:
                dash_index = 0
            dash_remain = self.dash[dash_index]
            vertices[V_TOP] = vertices[V_RIGHT]
            vertices[V_LEFT] = vertices[V_BOTTOM]
            slopes[V_LEFT].k = -slopes[V_RIGHT].k
        if not (dash_index & 1):
            vertices[V_TOP].x -= dx
            vertices[V_TOP].y -= dy
            vertices[V_LEFT].x -= dx
            vertices[V_LEFT].y -= dy
            vertices[V_RIGHT].x = rdy
            vertices[V_RIGHT].y = -rdx
            vertices[V_BOTTOM].x = -rdy
            vertices[V_BOTTOM].y = rdx
            slopes[V_RIGHT].k = 0
            slopes[V_LEFT].k += dx * dx + dy * dy
            if self.poly(vertices, slopes, 4, x2, y2) != OK:
                return E_BUDGET
        dash_remain = <int64_t>((<double>dash_remain) - l_remain)
        if dash_remain == 0:
            dash_index += 1
            if dash_index == self.ndash:
                dash_index = 0
            dash_remain = self.dash[dash_index]
        left_face.x = x1
        left_face.y = y1
        left_face.dx = dx
        left_face.dy = dy
        left_face.xa = rdy
        left_face.ya = -rdx
        left_face.k = k
        right_face.x = x2
        right_face.y = y2
        right_face.dx = -dx
        right_face.dy = -dy
        right_face.xa = -rdy
        right_face.ya = rdx
        right_face.k = k
        pdash_index[0] = dash_index
        pdash_offset[0] = self.dash[dash_index] - dash_remain
        return OK

    def dash_line(self, cnp.int64_t[:, ::1] pts, cnp.uint8_t[::1] dash, int dash_offset,
                  bint careful):
        """lines.c miZeroDashLine (miWideDash with lineWidth 1, LineOnOffDash, CapNotLast,
        JoinMiter) over one polyline. ``dash`` must have a non-zero total."""
        cdef Py_ssize_t npt = pts.shape[0], j
        cdef int64_t x1, y1, x2, y2, offset = 0
        cdef int index = 0, prev_index, status = OK
        cdef bint first = True, self_join, something = False
        cdef bint end_fg = False, start_fg = False, first_fg = False, prev_fg = False
        cdef Face left_face, right_face, prev_right, first_face, a, b
        if npt == 0:
            return OK
        self.dash = dash
        self.ndash = dash.shape[0]
        # miSetupSpanData: merged spans only for careful rops and 3 points or more.
        self.unique = careful and npt >= 3
        if self.unique and self.mask_array is None:
            self.mask_array = np.zeros((self.bottom - self.top, self.right - self.left),
                                       np.uint8)
            self.mask = self.mask_array
        x2, y2 = pts[0, 0], pts[0, 1]
        self_join = x2 == pts[npt - 1, 0] and y2 == pts[npt - 1, 1]
        self.step_dash(dash_offset, &index, &offset)
        for j in range(1, npt):
            x1, y1 = x2, y2
            x2, y2 = pts[j, 0], pts[j, 1]
            self.budget -= 1
            if self.budget < 0:
                status = E_BUDGET
                break
            if x1 != x2 or y1 != y2:
                something = True
                prev_index = index
                if self.dash_segment(&offset, &index, x1, y1, x2, y2, &left_face,
                                     &right_face) != OK:
                    status = E_BUDGET
                    break
                start_fg = not (prev_index & 1)
                end_fg = (index & 1) ^ (offset != 0)
                if start_fg:
                    if first or not prev_fg:
                        if first and self_join:
                            first_face = left_face
                            first_fg = start_fg
                    else:
                        a = left_face
                        b = prev_right
                        if self.join(&a, &b) != OK:
                            status = E_BUDGET
                            break
                prev_right = right_face
                prev_fg = end_fg
                first = False
            if j == npt - 1 and something and end_fg and self_join and first_fg:
                a = first_face
                b = right_face
                if self.join(&a, &b) != OK:
                    status = E_BUDGET
                    break
        if self.unique and self.flush_unique() != OK:
            status = E_BUDGET
        self.unique = False
        return status


cdef inline int32_t wrap32(int64_t v) noexcept nogil:
    return <int32_t><uint32_t>(<uint64_t>v & 0xFFFFFFFFu)


cdef inline int64_t mul64(int64_t a, int64_t b) noexcept nogil:
    """int64 multiply with two's-complement wrap-around (what canvas_base.c's int64_t
    arithmetic does on overflow on every platform spice-gtk runs on)."""
    return <int64_t>(<uint64_t>a * <uint64_t>b)


cdef inline int64_t dot(int32_t x1, int32_t y1, int32_t x2, int32_t y2) noexcept nogil:
    return <int64_t>(<uint64_t>mul64(x1, x2) + <uint64_t>mul64(y1, y2)) >> 4


cdef inline int32_t half(int32_t a, int32_t b) noexcept nogil:
    """(a + b) / 2 in C int arithmetic (wrapping sum, division truncating toward 0)."""
    return wrap32(<int64_t>a + b) // 2


cdef inline int64_t fix_to_int(int32_t f) noexcept nogil:
    """canvas_base.c fix_to_int: round to nearest, halves down."""
    return (f >> 4) + (1 if (f & 0x0F) > 8 else 0)


cdef inline void put8(int32_t *f, int32_t a, int32_t b, int32_t c, int32_t d, int32_t e,
                      int32_t g, int32_t h, int32_t i) noexcept nogil:
    f[0] = a
    f[1] = b
    f[2] = c
    f[3] = d
    f[4] = e
    f[5] = g
    f[6] = h
    f[7] = i


def bezier(int32_t x0, int32_t y0, int32_t x1, int32_t y1, int32_t x2, int32_t y2,
           int32_t x3, int32_t y3, Py_ssize_t cap, int max_depth):
    """canvas_base.c subdivide_bezier from fixed-point (x0, y0): the integer points it
    appends, as an (n, 2) int64 array, or None past ``cap`` points. Two guards spice-common
    lacks (where it recurses until its stack overflows): a curve whose four points coincide
    is one point, and at ``max_depth`` halvings a piece is taken as straight."""
    if max_depth > 60:
        max_depth = 60
    cdef Py_ssize_t room = cap if max_depth >= 24 else min(cap, (<Py_ssize_t>1) << max_depth)
    out = np.empty((max(room, 1), 2), np.int64)
    cdef cnp.int64_t[:, ::1] o = out
    cdef int32_t c[8]
    put8(c, x0, y0, x1, y1, x2, y2, x3, y3)
    cdef Py_ssize_t n = flatten(c, &o[0, 0], room, max_depth)
    return None if n < 0 else out[:n]


cdef Py_ssize_t flatten(const int32_t *curve, int64_t *o, Py_ssize_t room,
                        int max_depth) noexcept nogil:
    """subdivide_bezier of the fixed-point ``curve`` (x0, y0 .. x3, y3) into ``o`` (room
    for ``room`` (x, y) points; a curve has at most 2 ** max_depth): how many points it
    wrote, or -1 past ``room``. ``max_depth`` is at most 60 (the stack holds 64)."""
    cdef int32_t st[64][8]
    cdef int depth[64]
    cdef int sp = 0, d
    cdef int32_t p[8]
    cdef int32_t p01x, p01y, p12x, p12y, p23x, p23y, p012x, p012y, p123x, p123y, mx, my
    cdef int64_t a2, b2, c2, ab, cb, h1, h2
    cdef Py_ssize_t n = 0, i
    for i in range(8):
        st[0][i] = curve[i]
    depth[0] = 0
    sp = 1
    while sp > 0:
        sp -= 1
        for i in range(8):
            p[i] = st[sp][i]
        d = depth[sp]
        a2 = dot(wrap32(<int64_t>p[2] - p[0]), wrap32(<int64_t>p[3] - p[1]),
                 wrap32(<int64_t>p[2] - p[0]), wrap32(<int64_t>p[3] - p[1]))
        b2 = dot(wrap32(<int64_t>p[6] - p[0]), wrap32(<int64_t>p[7] - p[1]),
                 wrap32(<int64_t>p[6] - p[0]), wrap32(<int64_t>p[7] - p[1]))
        c2 = dot(wrap32(<int64_t>p[4] - p[6]), wrap32(<int64_t>p[5] - p[7]),
                 wrap32(<int64_t>p[4] - p[6]), wrap32(<int64_t>p[5] - p[7]))
        ab = dot(wrap32(<int64_t>p[2] - p[0]), wrap32(<int64_t>p[3] - p[1]),
                 wrap32(<int64_t>p[6] - p[0]), wrap32(<int64_t>p[7] - p[1]))
        cb = dot(wrap32(<int64_t>p[4] - p[6]), wrap32(<int64_t>p[5] - p[7]),
                 wrap32(<int64_t>p[0] - p[6]), wrap32(<int64_t>p[1] - p[7]))
        h1 = <int64_t>(<uint64_t>mul64(a2, b2) - <uint64_t>mul64(ab, ab)) >> 3
        h2 = <int64_t>(<uint64_t>mul64(c2, b2) - <uint64_t>mul64(cb, cb)) >> 3
        if ((h1 < b2 and h2 < b2) or d >= max_depth
                or (p[0] == p[2] == p[4] == p[6] and p[1] == p[3] == p[5] == p[7])):
            if n >= room:
                return -1
            o[2 * n] = fix_to_int(p[6])
            o[2 * n + 1] = fix_to_int(p[7])
            n += 1
            continue
        p01x, p01y = half(p[0], p[2]), half(p[1], p[3])
        p12x, p12y = half(p[2], p[4]), half(p[3], p[5])
        p23x, p23y = half(p[4], p[6]), half(p[5], p[7])
        p012x, p012y = half(p01x, p12x), half(p01y, p12y)
        p123x, p123y = half(p12x, p23x), half(p12y, p23y)
        mx, my = half(p012x, p123x), half(p012y, p123y)
        # right half first on the stack so the left half is drawn first
        put8(st[sp], mx, my, p123x, p123y, p23x, p23y, p[6], p[7])
        depth[sp] = d + 1
        put8(st[sp + 1], p[0], p[1], p01x, p01y, p012x, p012y, mx, my)
        depth[sp + 1] = d + 1
        sp += 2
    return n


# spice.proto SpicePathFlags (protocol.constants.PathFlags; a test pins them).
PATH_BEGIN = 1 << 0
PATH_END = 1 << 1
PATH_CLOSE = 1 << 3
PATH_BEZIER = 1 << 4
WALK_OK = 0
WALK_MALFORMED = 1
WALK_TOO_COMPLEX = 2


def walk(const uint8_t[::1] flags, const int64_t[::1] counts, const int32_t[:, ::1] points,
         Py_ssize_t max_points, int max_depth):
    """canvas_draw_stroke's walk of a path (segment ``flags`` and point ``counts``, and all
    its fixed 28.4 ``points`` in order) into the polylines it hands to the line code, each
    an (n, 2) int64 array of integer (x, y): see render.stroke.polylines, whose rules this
    is. Returns (polylines, status): WALK_OK, or the problem that stopped the walk
    (WALK_MALFORMED, WALK_TOO_COMPLEX past ``max_points`` points), the polylines before it
    kept. One C loop over the path, however many segments and curves it has."""
    cdef Py_ssize_t nseg = flags.shape[0], total_pts = points.shape[0]
    if counts.shape[0] != nseg:
        raise ValueError("flags and counts differ in length")
    if max_depth > 60:
        max_depth = 60
    cdef Py_ssize_t curve_room = (<Py_ssize_t>1) << max_depth if max_depth < 24 else max_points
    cdef Py_ssize_t cap = 64
    buf = np.empty((cap, 2), np.int64)
    cdef cnp.int64_t[:, ::1] b = buf
    bounds = []
    cdef Py_ssize_t seg, i, j, k, cnt, idx, n = 0, start = 0, pos = 0, total = 0, got, need
    cdef Py_ssize_t room
    cdef uint8_t f
    cdef int32_t c[8]
    cdef int status = WALK_OK
    for seg in range(nseg):
        f = flags[seg]
        cnt = counts[seg]
        if cnt < 0 or cnt > total_pts - pos:
            raise ValueError("counts overrun the points")
        idx = 0
        need = n + cnt + 1
        if f & PATH_BEZIER:
            need = n + min(max_points - total, curve_room * (cnt // 3 + 1)) + 2
        if need > cap:
            cap = max(need, 2 * cap)
            grown = np.empty((cap, 2), np.int64)
            grown[:n] = buf[:n]
            buf = grown
            b = buf
        if f & PATH_BEGIN:
            if n > start:
                bounds.append((start, n))
            start = n
            if cnt == 0:
                status = WALK_MALFORMED
                break
            b[n, 0] = fix_to_int(points[pos, 0])
            b[n, 1] = fix_to_int(points[pos, 1])
            n += 1
            idx = 1
        if f & PATH_BEZIER:
            if (cnt - idx) % 3:
                status = WALK_MALFORMED
                break
            j = idx
            while j < cnt:
                if n == start:
                    status = WALK_MALFORMED
                    break
                c[0] = wrap32(b[n - 1, 0] << 4)  # int_to_fix of the last point
                c[1] = wrap32(b[n - 1, 1] << 4)
                for k in range(3):
                    c[2 + 2 * k] = points[pos + j + k, 0]
                    c[3 + 2 * k] = points[pos + j + k, 1]
                room = max_points - total
                got = flatten(c, &b[n, 0], room, max_depth) if room > 0 else -1
                if got < 0:
                    status = WALK_TOO_COMPLEX
                    break
                n += got
                total += got
                j += 3
            if status != WALK_OK:
                break
        else:
            for i in range(idx, cnt):
                b[n, 0] = fix_to_int(points[pos + i, 0])
                b[n, 1] = fix_to_int(points[pos + i, 1])
                n += 1
        total += cnt if not (f & PATH_BEZIER) else idx
        pos += cnt
        if total > max_points:
            status = WALK_TOO_COMPLEX
            break
        if f & PATH_END:
            if f & PATH_CLOSE and n > start:
                b[n, 0] = b[start, 0]
                b[n, 1] = b[start, 1]
                n += 1
            if n > start:
                bounds.append((start, n))
            start = n
    else:
        if n > start:
            bounds.append((start, n))
    return [buf[s:e] for s, e in bounds], status
