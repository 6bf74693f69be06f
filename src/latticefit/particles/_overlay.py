"""Particle overlays that show what the fit did: status styles, and a scale bar that covers no particle.

:func:`draw_particles` draws each particle by its ``status`` (``ok`` outline and the fitted circle, solid
and thick enough to see at print size; ``edge``, ``cluster`` and ``rejected`` each in their own colour and
line style, rejected fits also crossed) and returns the legend handles. :func:`place_scalebar` puts the
scale bar in the emptiest corner of the image: the first of lower right, lower left, upper right whose box
holds no pixel of a detected particle (outline or fitted circle), then any free stretch of the bottom or top
edge, then the same with a shorter bar, and otherwise outside the image, under its lower right corner. The
upper left corner holds the panel letter.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

__all__ = ["STYLES", "draw_particles", "occupancy", "place_scalebar"]

#: status -> (colour key in OKABE_ITO / COLORS, line style, legend label)
STYLES = {
    "ok": ("outline", "solid", "particle outline"),
    "edge": ("edge", "solid", "cut by border (excluded)"),
    "edge_included": ("edge", "solid", "cut by border (included)"),
    "cluster": ("vermillion", (0, (3, 1.5)), "unsplit cluster (excluded)"),
    "rejected": ("yellow", (0, (1, 1)), "rejected fit (excluded)"),
}


def _colour(key):
    from .._plotstyle import COLORS, OKABE_ITO

    return COLORS.get(key) or OKABE_ITO[key]


def occupancy(labels, table, shape):
    """Boolean image of every pixel a detected particle covers: its segment or its fitted disk."""
    occ = np.asarray(labels) > 0
    h, w = shape
    if table is not None and len(table):
        yy, xx = np.ogrid[:h, :w]
        pix_r = table["diameter_px_overlay"].to_numpy(float) / 2 if "diameter_px_overlay" in table else None
        if pix_r is not None:
            for x, y, r in zip(table["x_px"].to_numpy(float), table["y_px"].to_numpy(float), pix_r):
                if not (np.isfinite(r) and np.isfinite(x) and np.isfinite(y)):
                    continue
                x0, x1 = max(0, int(x - r - 1)), min(w, int(x + r + 2))
                y0, y1 = max(0, int(y - r - 1)), min(h, int(y + r + 2))
                if x0 < x1 and y0 < y1:
                    occ[y0:y1, x0:x1] |= (xx[:, x0:x1] - x) ** 2 + (yy[y0:y1] - y) ** 2 <= (r + 1) ** 2
    return occ


def _box_px(ax, shape, pixel_size_nm, length_fraction, fontsize=7.0):
    """Approximate (width, height) of the scale bar box in image pixels for this axes' size on the page."""
    from .._plotstyle import scalebar_length_nm

    h, w = shape
    bb = ax.get_position()
    fig_w, fig_h = ax.figure.get_size_inches()
    ax_w_in, ax_h_in = max(bb.width * fig_w, 1e-3), max(bb.height * fig_h, 1e-3)
    px_per_in = max(w / ax_w_in, h / ax_h_in)
    pt = px_per_in / 72.0
    length_px = scalebar_length_nm(w * pixel_size_nm, length_fraction) / pixel_size_nm
    label_w = 4.5 * 0.62 * fontsize * pt  # "50 nm" in bold
    width = max(length_px, label_w) + 2 * 0.3 * fontsize * pt
    height = (1.25 * fontsize + 2 * 0.3 * fontsize + 2) * pt + 0.025 * h
    margin = 0.4 * fontsize * pt
    return width + margin, height + margin


def _free_run(cols_busy, width, prefer_right=True):
    """Start index of a run of ``width`` free columns (``cols_busy`` False), the rightmost first, or None."""
    n = len(cols_busy)
    if width > n:
        return None
    busy = np.concatenate([[0], np.cumsum(cols_busy.astype(int))])
    starts = np.arange(0, n - width + 1)
    free = (busy[starts + width] - busy[starts]) == 0
    if not free.any():
        return None
    ok = starts[free]
    return int(ok.max() if prefer_right else ok.min())


def place_scalebar(ax, pixel_size_nm, labels, table=None, *, length_fraction=0.25):
    """Add the scale bar where it covers no detected particle; returns where it went.

    Tried in order: the lower right, lower left and upper right corners; then any free stretch along the
    bottom edge (rightmost first) or the top edge right of the panel letter; all that with the standard bar
    (``length_fraction`` of the field) and then a shorter one (0.15). Otherwise the bar goes outside the
    image, under its lower right corner (``'outside'``).
    """
    from .._plotstyle import add_scalebar

    h, w = labels.shape
    occ = occupancy(labels, table, (h, w))
    for frac in (length_fraction, 0.15):
        bw, bh = _box_px(ax, (h, w), pixel_size_nm, frac)
        bw, bh = math.ceil(min(bw, w)), math.ceil(min(bh, h))
        boxes = {
            "lower right": occ[h - bh :, w - bw :],
            "lower left": occ[h - bh :, :bw],
            "upper right": occ[:bh, w - bw :],
        }
        for loc, box in boxes.items():
            if not box.any():
                add_scalebar(ax, pixel_size_nm, location=loc, length_fraction=frac)
                return loc
        for loc, strip, lo in (("lower", occ[h - bh :], 0), ("upper", occ[:bh], int(0.4 * w))):
            start = _free_run(strip[:, lo:].any(axis=0), bw)
            if start is not None:
                x1 = (lo + start + bw - 0.5) / w  # right edge of the box, axes fraction
                anchor = (x1, 0.0) if loc == "lower" else (x1, 1.0)
                add_scalebar(ax, pixel_size_nm, location=f"{loc} right", length_fraction=frac, bbox_to_anchor=anchor)
                return f"{loc} edge"
    add_scalebar(ax, pixel_size_nm, location="upper right", length_fraction=length_fraction, bbox_to_anchor=(1.0, 0.0))
    return "outside"


def draw_particles(ax, result, *, circles=True, centres=True, linewidth=0.8):
    """Outlines by status, fitted circles of the particles that pass the checks, centre marks.

    Returns the legend handles of the styles that occur.
    """
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Circle as MplCircle

    from .._plotstyle import OKABE_ITO

    t = result.table
    pix = float(math.sqrt(result.pixel_size_nm[0] * result.pixel_size_nm[1]))
    if "status" in t:
        status = t["status"].to_numpy(str).astype(object)
        inc = t["edge"].to_numpy(bool) & (status == "ok")
        status[inc] = "edge_included"
    else:
        status = np.where(
            t["edge"].to_numpy(bool), "edge", np.where(t["cluster_unsplit"].to_numpy(bool), "cluster", "ok")
        ).astype(object)
    labs = t["label"].to_numpy(int)
    segs = _outline_segments(result.labels, labs)
    status, marks = _one_mark_per_flagged_object(result.labels, labs, status, t, segs)
    handles = []
    lw_c = max(0.8, linewidth)  # visible at print size: >= 0.8 pt, solid
    for key in ("ok", "edge", "edge_included", "cluster", "rejected"):
        sel = status == key
        if not sel.any():
            continue
        col, ls, label = STYLES[key]
        lines = [s for lab in labs[sel] for s in segs.get(lab, [])]
        if lines:
            ax.add_collection(LineCollection(lines, colors=_colour(col), linewidths=linewidth, linestyles=ls, zorder=5))
        handles.append(
            Line2D(
                [], [], color=_colour(col), lw=1.2, ls=ls, label=label, marker="x" if key == "rejected" else None, ms=4
            )
        )
    d = t["diameter_nm"].to_numpy(float)
    if circles:
        drawn = False
        for x, y, dd, st in zip(t["x_px"], t["y_px"], d, status):
            if st in ("ok", "edge_included") and np.isfinite(dd):
                ax.add_patch(MplCircle((x, y), dd / pix / 2.0, fill=False, ec=OKABE_ITO["sky_blue"], lw=lw_c, zorder=6))
                drawn = True
        if drawn:
            handles.insert(1, Line2D([], [], color=OKABE_ITO["sky_blue"], lw=1.2, label="model-fit diameter"))
    rej = status == "rejected"
    if rej.any():
        ax.plot(
            marks[0][rej],
            marks[1][rej],
            "x",
            color=OKABE_ITO["yellow"],
            ms=4.0,
            mew=1.0,
            zorder=7,
            ls="none",
        )
    if centres:
        ms = 4.0 if len(t) < 100 else 2.5
        ok = ~rej & (status != "merged")
        ax.plot(
            marks[0][ok],
            marks[1][ok],
            "+",
            color=OKABE_ITO["sky_blue"],
            ms=ms,
            mew=0.7,
            zorder=7,
            ls="none",
        )
    return handles


def _touching_pairs(labels):
    """Pairs ``(a, b)``, ``a < b``, of labels whose segments share a pixel edge."""
    pairs = []
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :])):
        m = (a != b) & (a > 0) & (b > 0)
        pairs.append(np.column_stack([np.minimum(a[m], b[m]), np.maximum(a[m], b[m])]))
    return np.unique(np.concatenate(pairs), axis=0) if len(pairs) else np.zeros((0, 2), int)


def _one_mark_per_flagged_object(labels, labs, status, t, segs):
    """One outline and one mark for each object made of touching flagged (cluster, rejected) segments.

    A non-spherical particle (a rod, a bar, an irregular blob) is often detected as two or three parts, each
    flagged; drawn one by one it carried two outlines and a cross or two (the real Velox view). The parts'
    union is drawn once, in the cluster style when a part is an unsplit cluster (else rejected), with its
    mark at the union's centroid; the table keeps one row per detection. Returns the drawing status
    (``'merged'`` for the parts drawn by another row) and the mark positions ``(x, y)``; ``segs`` gets the
    union's outline under the row that draws it.
    """
    x, y = t["x_px"].to_numpy(float).copy(), t["y_px"].to_numpy(float).copy()
    flagged = np.isin(status, ["cluster", "rejected"])
    if labels is None or flagged.sum() < 2:
        return status, (x, y)
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    row = {int(lab): i for i, lab in enumerate(labs)}
    node = {int(lab): k for k, lab in enumerate(labs[flagged])}
    pairs = [(node[int(a)], node[int(b)]) for a, b in _touching_pairs(labels) if int(a) in node and int(b) in node]
    if not pairs:
        return status, (x, y)
    i, j = np.array(pairs).T
    n = len(node)
    _, comp = connected_components(coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)), directed=False)
    groups = {}
    for lab, k in node.items():
        groups.setdefault(int(comp[k]), []).append(lab)
    status = status.copy()
    for members in (m for m in groups.values() if len(m) > 1):
        rows = [row[m] for m in members]
        first = min(rows, key=lambda i: (status[i] != "cluster", i))
        style = status[first]
        mask = np.isin(labels, members)
        segs[int(labs[first])] = _outline_segments(mask.astype(np.int32), [1])[1]
        yy, xx = np.nonzero(mask)
        x[first], y[first] = xx.mean(), yy.mean()
        for i in rows:
            status[i] = "merged"
        status[first] = style
    return status, (x, y)


def _outline_segments(labels, ids):
    """Outline polylines (x, y in pixel coordinates) of each label in ``ids``."""
    from skimage.measure import find_contours

    objs = ndi.find_objects(labels)
    out = {}
    for k in ids:
        if k < 1 or k > len(objs) or objs[k - 1] is None:
            continue
        sl = objs[k - 1]
        y0, x0 = sl[0].start, sl[1].start
        m = np.pad((labels[sl] == k).astype(np.float32), 1)
        segs = []
        for c in find_contours(m, 0.5):
            segs.append(np.column_stack([c[:, 1] + x0 - 1, c[:, 0] + y0 - 1]))
        out[k] = segs
    return out
