"""Crowded fields (issue 13): crowd kernels vs references, checked fits, border rules, statistics, overlays, real files."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree

from latticefit.particles import _crowd as C
from latticefit.particles._checks import check_fits, count_line_parts
from latticefit.particles._pipeline import count_line, find_particles, summary_lines
from latticefit.particles._size_precision import (
    bootstrap_cis,
    rsd_precision_advice,
    rsd_standard_error,
)
from latticefit.synth import haadf_dots
from latticefit.synth._crowded import benchmark_field, haadf_crowded


def f1_bias(res, truth):
    """F1 over non-edge truth (rejected fits not counted as particles), mean-diameter bias (%) of the statistics."""
    t = res.table[res.table.status != "rejected"]
    tp = truth.particles
    tedge = tp.edge.to_numpy(bool)
    d, j = cKDTree(np.c_[tp.x_px, tp.y_px]).query(np.c_[t.x_px, t.y_px])
    hit = d < tp.diameter_px.to_numpy()[j] / 2
    matched = np.zeros(len(tp), bool)
    fp = 0
    for h, jj, st in zip(hit, j, t.status):
        if h and not matched[jj]:
            matched[jj] = True
        elif st != "edge":
            fp += 1
    tpos = int((matched & ~tedge).sum())
    fn = int((~matched & ~tedge).sum())
    f1 = 2 * tpos / (2 * tpos + fp + fn)
    bias = 100 * (res.summary["mean_nm"] / tp.diameter_nm[~tedge].mean() - 1)
    return f1, bias


def _sized(mg, truth, diameter_range_nm):
    """``find_particles`` on a benchmark field (its warnings silenced) with its F1 and mean bias (%)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = find_particles(mg, diameter_range_nm=diameter_range_nm)
    return (res, *f1_bias(res, truth))


def _only_row_near(table, x, y, tol=5.0):
    """The one row of ``table`` centred within ``tol`` px of (x, y) (asserts there is exactly one)."""
    near = np.hypot(table.x_px - x, table.y_px - y) < tol
    assert near.sum() == 1, f"{int(near.sum())} detections near ({x}, {y})"
    return table[near].iloc[0]


# ------------------------------------------------------------------ kernels vs references
def test_spatial_maxima_matches_reference():
    rng = np.random.default_rng(0)
    stack = rng.normal(size=(3, 40, 50)).astype(np.float32)
    stack[1, 10, 10:12] = 9.0  # plateau: one point
    thr = np.array([1.0, 1.5, 2.0])
    a = C.spatial_maxima(stack, thr, 1)
    b = C.spatial_maxima_ref(stack, thr, 1)
    np.testing.assert_array_equal(a, b)
    assert ((a[:, 0] == 1) & (a[:, 1] == 10) & (a[:, 2] >= 10) & (a[:, 2] <= 11)).sum() == 1


def test_white_log_noise_matches_measured_log_noise():
    from latticefit.particles._scalespace import log_planes

    rng = np.random.default_rng(1)
    img = rng.normal(0, 3.0, (256, 256)).astype(np.float32)
    sig = np.array([1.5, 3.0, 6.0])
    L = np.stack(list(log_planes(img, sig)))
    pred = C.white_log_noise(C.pixel_noise(img, 1), sig)
    np.testing.assert_allclose(L[:, 20:-20, 20:-20].std(axis=(1, 2)), pred, rtol=0.08)


def test_opening_background_follows_a_step():
    yy, xx = np.mgrid[:256, :256]
    img = 100.0 + 60.0 * (xx > 150) + 0.1 * yy
    for cx, cy in ((60, 60), (200, 100), (150, 200)):
        img = img + 80.0 * np.sqrt(np.clip(1 - ((xx - cx) ** 2 + (yy - cy) ** 2) / 15.0**2, 0, None))
    rng = np.random.default_rng(2)
    img = (img + rng.normal(0, 2.0, img.shape)).astype(np.float32)
    bg, mask = C.opening_background(img, 45)
    truth = 100.0 + 60.0 * (xx > 150) + 0.1 * yy
    far = np.abs(xx - 150) > 12
    assert np.median(np.abs(bg - truth)[far]) < 3.0
    assert mask[60, 60] and mask[100, 200] and not mask[128, 100]


# ------------------------------------------------------------------ checked fits
def _table(**kw):
    base = {
        "diameter_nm": [5.0, 5.1, 9.0, 5.0, 5.0, 5.0, np.nan],
        "ecd_nm": [5.0, 5.0, 4.0, 5.2, 5.0, 5.0, 4.0],
        "diameter_err_nm": [0.1] * 6 + [np.nan],
        "x_err_px": [0.1] * 7,
        "y_err_px": [0.1] * 7,
        "chi2_red": [1.0, 1.1, 1.0, 40.0, 4.0, 1.0, 1.0],
        "fit_ok": [True] * 6 + [False],
        "edge": [False, False, False, False, False, True, False],
        "cluster_unsplit": [False, False, False, False, True, False, False],
    }
    base.update(kw)
    return pd.DataFrame(base)


def test_check_fits_statuses_reasons_and_partition():
    t = check_fits(_table())
    assert list(t.status) == ["ok", "ok", "rejected", "rejected", "cluster", "edge", "rejected"]
    assert list(t.reject_reason[:4]) == ["", "", "leaves_segment", "chi2"] and t.reject_reason[6] == "no_convergence"
    assert list(t.in_statistics) == [True, True, False, False, False, False, False]
    parts = count_line_parts(t)
    assert parts == {**parts, "n_detected": 7, "n_in_statistics": 2, "n_edge": 1, "n_rejected": 3, "n_cluster": 1}
    assert parts["reasons"] == {"chi2": 1, "leaves_segment": 1, "no_convergence": 1}
    # errors of weighted fits scaled by sqrt(chi2_red) when > 1, not below 1, not twice for unweighted fits
    np.testing.assert_allclose(t.diameter_err_nm[:2], [0.1, 0.1 * np.sqrt(1.1)])
    assert np.isclose(t.diameter_err_nm[4], 0.2)
    assert np.allclose(check_fits(_table(), errors_scaled=True).diameter_err_nm[:6], 0.1)


def test_a_fit_that_misfits_its_particle_far_more_than_the_others_is_rejected():
    base = {"diameter_nm": 50.0, "ecd_nm": 50.0, "diameter_err_nm": 0.5, "x_err_px": 0.1, "y_err_px": 0.1,
            "fit_ok": True, "edge": False, "cluster_unsplit": False}  # fmt: skip
    mf = [0.05, 0.06, 0.07, 0.06, 0.12, 0.25, 0.33]
    c2 = [300.0, 150.0, 380.0, 260.0, 35.0, 8.0, 2.0]  # chi2 grows with the signal of the bright dots
    t = pd.DataFrame([{**base, "misfit_fraction": m, "chi2_red_disc": c, "chi2_red": c} for m, c in zip(mf, c2)])
    out = check_fits(t)
    # the chi2 rule rejects none (its threshold is 5 x the median 150); the misfit rule the significant outlier
    assert out.reject_reason.tolist() == ["", "", "", "", "", "misfit", ""]
    assert out.in_statistics.tolist() == [True] * 5 + [False, True]
    # too few fits to say what the image's misfit is
    assert (check_fits(t.iloc[3:]).reject_reason != "misfit").all()
    # a field whose particles all misfit alike (a lattice over every dot): none is an outlier
    assert (check_fits(t.assign(misfit_fraction=0.25, chi2_red_disc=8.0)).reject_reason == "").all()


def test_keep_flagged_and_include_rule():
    t = check_fits(_table(), keep_flagged=True, border_rule="include")
    assert list(t.status) == ["ok", "ok", "rejected", "rejected", "cluster", "ok", "rejected"]
    # flagged ones with a finite fit are kept; the failed fit (no diameter) never is
    assert list(t.in_statistics) == [True, True, True, True, True, True, False]
    p = count_line_parts(t)
    assert p["n_in_statistics"] + p["n_edge"] + p["n_rejected"] + p["n_cluster"] == p["n_detected"]
    assert p["n_flagged_kept"] == 3 and p["n_edge_included"] == 1


# ------------------------------------------------------------------ statistics
def test_bootstrap_cis_cover_and_rsd_advisor_matches_simulation():
    rng = np.random.default_rng(3)
    d = rng.normal(7.0, 0.56, 200)
    ci = bootstrap_cis(d, seed=1)
    for key in ("mean_ci95_nm", "median_ci95_nm", "std_ci95_nm"):
        assert ci[key][0] < ci[key][1]
    assert ci["mean_ci95_nm"][0] < 7.0 < ci["mean_ci95_nm"][1]
    # the SE of the RSD from the formula against the spread of simulated RSDs (N = 50, RSD 8 %)
    sims = rng.normal(7.0, 0.56, (4000, 50))
    rsd = 100 * sims.std(axis=1, ddof=1) / sims.mean(axis=1)
    assert abs(rsd_standard_error(8.0, 50) / rsd.std() - 1) < 0.08
    adv = rsd_precision_advice(8.0, 50)
    assert adv["targets"][0]["halfwidth_pp"] == 1.0 and adv["targets"][0]["n_needed"] > 50


def test_summary_lines_state_what_every_plus_minus_is():
    mg, _ = __import__("latticefit.synth", fromlist=["haadf_dots"]).haadf_dots(
        (384, 384), pixel_size_nm=0.1, diameter_nm=5.0, n_particles=25, n_touching_pairs=2, seed=4
    )
    res = find_particles(mg, diameter_range_nm=(2.5, 10))
    lines = summary_lines(res)
    txt = "\n".join(lines)
    assert "± SE" in txt and "95% CI" in txt and "particles needed" in txt and "KS p" in txt
    for line in lines:
        if "±" in line and "RSD precision" not in line:
            assert "SE" in line or "SD" in line or "CI" in line
    s = res.summary
    assert s["n_detected"] == s["n"] + s["n_edge"] + s["n_rejected"] + s["n_cluster"]
    assert count_line(s).startswith(f"{s['n_detected']} particles detected = {s['n']} in statistics")
    assert s["goodness_of_fit"]["preferred"] in ("normal", "lognormal")


def test_border_rules():
    mg, _truth = __import__("latticefit.synth", fromlist=["haadf_dots"]).haadf_dots(
        (384, 384), pixel_size_nm=0.1, diameter_nm=5.0, n_particles=30, n_touching_pairs=0, seed=5
    )
    ex = find_particles(mg, diameter_range_nm=(2.5, 10), border_rule="exclude")
    inc = find_particles(mg, diameter_range_nm=(2.5, 10), border_rule="include")
    ml = find_particles(mg, diameter_range_nm=(2.5, 10), border_rule="miles-lantuejoul")
    assert ex.summary["n_edge"] > 0 and inc.summary["n"] > ex.summary["n"] and inc.summary["n_edge"] == 0
    assert ml.summary["weighted"] and ml.summary["n"] == ex.summary["n"]
    assert not ex.table[ex.table.edge].in_statistics.any()
    from latticefit.errors import AnalysisError

    with pytest.raises(AnalysisError, match="border_rule"):
        find_particles(mg, diameter_range_nm=(2.5, 10), border_rule="weird")


# ------------------------------------------------------------------ generator and crowded fields
def test_haadf_crowded_truth():
    mg, truth = haadf_crowded((384, 384), pixel_size_nm=0.1, diameter_nm=4.0, n_groups=6, n_isolated=4, seed=7)
    mg2, _truth2 = haadf_crowded((384, 384), pixel_size_nm=0.1, diameter_nm=4.0, n_groups=6, n_isolated=4, seed=7)
    np.testing.assert_array_equal(mg.data, mg2.data)
    tp = truth.particles
    assert set(tp.kind) <= {"raft", "chain", "aggregate", "pair", "isolated"} and (tp.kind == "raft").any()
    # surface gaps inside groups: 0.1-1 nm (pairs 0-0.3 nm, aggregates may overlap in projection)
    g = tp.gap_nm[tp.kind.isin(["raft", "chain"]) & tp.gap_nm.notna()]
    assert ((g >= 0.1 - 1e-9) & (g <= 1.0 + 1e-9)).all()
    assert tp.touching.mean() > 0.5
    # every listed sphere shows in the field
    r = tp.diameter_px / 2
    assert ((tp.x_px + r > -0.5) & (tp.x_px - r < 383.5) & (tp.y_px + r > -0.5) & (tp.y_px - r < 383.5)).all()


@pytest.mark.parametrize("d, pix, dose, seed", [(4.0, 0.1, 50.0, 11), (7.0, 0.06, 20.0, 6), (7.0, 0.15, 100.0, 3)])
def test_crowded_fields_counted_and_sized(d, pix, dose, seed):
    # rafts, chains, aggregates, pairs over a ramp and a film edge; (7 nm, 0.06 nm/px) found nothing before
    mg, truth = benchmark_field("crowd", d, pix, dose, seed)
    res, f1, bias = _sized(mg, truth, (0.5 * d, 2 * d))
    assert f1 >= 0.9 and abs(bias) <= 1.0
    assert not res.table[res.table.status.isin(["cluster", "rejected"])].in_statistics.any()


def test_small_dots_5_to_8_px():
    mg, truth = haadf_crowded(
        (384, 384),
        pixel_size_nm=4.0 / 6.5,
        diameter_nm=4.0,
        n_groups=150,
        n_isolated=150,
        dose=100.0,
        seed=2,
        probe_sigma_nm=0.3 * 4.0 / 6.5,
    )
    res, f1, bias = _sized(mg, truth, (2.0, 8.0))
    assert f1 >= 0.97 and abs(bias) <= 1.0
    s = res.summary
    assert abs(s["rsd_corrected_percent"] - 8.0) < 1.5


def test_crowd_splitting_replaces_a_blob_tiled_by_smaller_maxima():
    from latticefit.particles import _kernels as K

    # one large blob at (50, 50) r 12 and three single-scale maxima inside it that tile it
    y, x, r, s = np.array([50.0]), np.array([50.0]), np.array([12.0]), np.array([20.0])
    cy, cx = np.array([45.0, 45.0, 55.5]), np.array([44.0, 56.0, 50.0])
    cr, cs = np.array([5.5, 5.5, 5.5]), np.array([8.0, 8.0, 8.0])
    keep, extra = C.split_crowds(y, x, r, s, np.array([True]), cy, cx, cr, cs, prune=K.prune_blobs, overlap=0.4)
    assert not keep[0] and list(extra) == [0, 1, 2]
    # two weak bumps on one dot's top (5 and 20 sigma against its 72) do not split it
    keep, extra = C.split_crowds(
        np.array([222.0]),
        np.array([173.0]),
        np.array([14.2]),
        np.array([72.0]),
        np.array([True]),
        np.array([218.0, 229.0]),
        np.array([172.0, 172.0]),
        np.array([4.3, 7.5]),
        np.array([5.3, 20.0]),
        prune=K.prune_blobs,
        overlap=0.4,
    )
    assert keep[0] and len(extra) == 0
    # concentric smaller maxima (one sphere seen at several scales) do not split it
    keep, extra = C.split_crowds(
        y,
        x,
        r,
        s,
        np.array([True]),
        np.array([50.0, 50.5]),
        np.array([50.0, 49.5]),
        np.array([5.0, 7.0]),
        np.array([8.0, 9.0]),
        prune=K.prune_blobs,
        overlap=0.4,
    )
    assert keep[0] and len(extra) == 0


# ------------------------------------------------------------------ overlays
def test_scalebar_goes_to_an_empty_corner_or_outside():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from latticefit.particles._overlay import place_scalebar

    labels = np.zeros((200, 200), np.int32)
    labels[170:200, 150:200] = 1  # a particle in the lower right corner
    _fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(np.zeros((200, 200)))
    assert place_scalebar(ax, 0.1, labels) == "lower left"
    labels[170:200, 0:60] = 2
    labels[0:40, 140:200] = 3
    _fig2, ax2 = plt.subplots(figsize=(4, 4))
    ax2.imshow(np.zeros((200, 200)))
    assert place_scalebar(ax2, 0.1, labels) == "lower edge"  # the free stretch between the two bottom dots
    labels[185:200, :] = 4
    labels[:15, :] = 5
    _fig3, ax3 = plt.subplots(figsize=(4, 4))
    ax3.imshow(np.zeros((200, 200)))
    assert place_scalebar(ax3, 0.1, labels) == "outside"
    plt.close("all")


def test_overlay_draws_statuses(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from latticefit.particles import plot_overlay

    mg, _ = haadf_crowded((256, 256), pixel_size_nm=0.1, diameter_nm=4.0, n_groups=4, n_isolated=3, seed=1)
    res = find_particles(mg, diameter_range_nm=(2, 8))
    res.table.loc[0, "status"] = "rejected"
    res.table.loc[1, "status"] = "cluster"
    fig, ax = plt.subplots()
    plot_overlay(res, mg, ax=ax)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "rejected fit (excluded)" in labels and "unsplit cluster (excluded)" in labels
    assert "model-fit diameter" in labels
    # fitted circles solid and >= 0.8 pt
    circles = [p for p in ax.patches if p.__class__.__name__ == "Circle"]
    assert circles and all(c.get_linewidth() >= 0.8 and c.get_linestyle() == "solid" for c in circles)
    fig.savefig(tmp_path / "o.png")
    plt.close(fig)


def test_touching_flagged_parts_of_one_object_are_drawn_once():
    """A rod found as two touching parts, one an unsplit cluster and one a rejected fit: one dashed outline
    around both and no cross; a rejected fit apart from it keeps its own outline and cross."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from latticefit.particles._overlay import _one_mark_per_flagged_object, _outline_segments

    labels = np.zeros((40, 60), np.int32)
    labels[5:15, 5:12] = 1  # upper half of the rod
    labels[15:25, 5:12] = 2  # lower half, touching it
    labels[5:12, 30:37] = 3  # a rejected fit on its own
    labels[25:32, 40:47] = 4  # a good fit
    t = pd.DataFrame({"label": [1, 2, 3, 4], "x_px": [8.0, 8.0, 33.0, 43.0], "y_px": [10.0, 20.0, 8.0, 28.0]})
    status = np.array(["cluster", "rejected", "rejected", "ok"], dtype=object)
    segs = _outline_segments(labels, t.label.to_numpy())
    drawn, (x, y) = _one_mark_per_flagged_object(labels, t.label.to_numpy(), status, t, segs)
    assert drawn.tolist() == ["cluster", "merged", "rejected", "ok"]
    assert (x[0], y[0]) == (8.0, 14.5)  # the mark at the union's centroid
    (outline,) = segs[1]  # one closed outline around both parts
    assert outline[:, 1].min() < 5 and outline[:, 1].max() > 24
    # drawn: one cross (the rejected fit on its own), one dashed outline for the rod
    from types import SimpleNamespace

    from latticefit.particles._overlay import draw_particles

    full = t.assign(status=status, edge=False, cluster_unsplit=[True, False, False, False], diameter_nm=0.5)
    fig, ax = plt.subplots()
    draw_particles(ax, SimpleNamespace(table=full, labels=labels, pixel_size_nm=(0.1, 0.1)))
    crosses = [ln for ln in ax.lines if ln.get_marker() == "x"]
    assert len(crosses) == 1 and len(crosses[0].get_xdata()) == 1
    dashed = [c for c in ax.collections if c.get_linestyle()[0][1] is not None]
    assert sum(len(c.get_segments()) for c in dashed) == 1 + 1  # the rod's outline + the lone fit's dotted one
    plt.close(fig)


def test_cli_border_rule_and_keep_flagged(tmp_path, capsys):
    import tifffile

    from latticefit.cli import main

    mg, _ = haadf_crowded((256, 256), pixel_size_nm=0.1, diameter_nm=4.0, n_groups=4, n_isolated=3, seed=1)
    path = tmp_path / "c.tif"
    tifffile.imwrite(path, mg.data)
    rc = main(
        [
            "particles",
            str(path),
            "--pixel-size",
            "0.1nm",
            "--diameter-range",
            "2-8nm",
            "--border-rule",
            "include",
            "--keep-flagged",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "border rule include" in out and "particles needed" in out


# ------------------------------------------------------------------ real files
REAL = [
    # the Velox view at the default range holds faint rounded objects and film-edge structure besides its nine
    # bright dots (25 detections, 17 in statistics at the start of 2026-12-07; 34 and 21 after stop 31; 41 and 23
    # since the segments flooding a raised background are re-drawn at their fits' own background; 40 and 20 since
    # the LoG noise is measured with the particle mask taken by blocks)
    ("particles/EMDReader_Image_FEI.emd", {}, (25, 70), (3, 24)),
    ("particles/JEOL HAADF Image.dm4", {}, (15, 30), (10, 22)),
    ("particles/03_Scanning Preview.emi", {"frame": "mean"}, (17, 30), (8, 16)),
]


@pytest.mark.realdata
@pytest.mark.parametrize("name, kw, n_det, n_stats", REAL, ids=["velox", "jeol", "emi"])
def test_real_files_keep_flagged_out_of_statistics(realdata, realfile, name, kw, n_det, n_stats):
    from latticefit import io

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = find_particles(io.load(realfile(name), **kw))
    t, s = res.table, res.summary
    assert not t[t.status.isin(["cluster", "rejected"]) | t.cluster_unsplit].in_statistics.any()
    assert s["n_detected"] == s["n"] + s["n_edge"] + s["n_rejected"] + s["n_cluster"]
    assert n_det[0] <= s["n_detected"] <= n_det[1] and n_stats[0] <= s["n"] <= n_stats[1]
    # the errors say how good the model is: scaled up where chi2_red > 1 (weighted fits)
    assert (t.error_scale >= 1).all()
    assert not res.settings["error_bootstrap"]["applied"]  # no counting image: no parametric bootstrap
    if "FEI" in name:
        # the lower half of an elongated particle and an oval one, fitted as spheres: their misfit is 3.8 and
        # 4.3 times the view's median (0.062); the chi2 rule cannot see it beside bright dots of chi2 150-380
        for x, y in ((92.4, 129.1), (492.7, 176.5)):
            row = _only_row_near(t, x, y, tol=2.0)
            assert row.status == "rejected" and row.reject_reason == "misfit", (x, y)
        # a bright rim detection inside the 165 nm particle at (254, 144), stronger in the LoG than the
        # particle's own detection, was a rejected cross on it: a shoulder, dropped
        assert res.settings["n_shoulders_dropped"] == 1
        assert not (np.hypot(t.x_px - 264.9, t.y_px - 141.1) < 3).any()
        assert _only_row_near(t, 254.5, 143.5, tol=2.0).status == "ok"
        # a faint round dot and the dimmer dot of a touching pair, whose small segments are not convex, are
        # one sphere each (chi2_red 1.3 and 1.1 at 12 and 20 SE of height): in the statistics
        for x, y, d_nm in ((172.3, 266.9, 26.1), (12.1, 200.5, 48.3)):
            row = _only_row_near(t, x, y, tol=2.0)
            assert row.in_statistics and abs(row.diameter_nm - d_nm) < 3.0, (x, y)
    else:
        assert (t.reject_reason != "misfit").all()


def test_default_range_on_a_dense_field_finds_every_dot():
    """1024² of 60 separated 7 nm dots at the default diameter range (1-25.6 nm).

    53 were found when the coarse background blocks (32 px) held dot structure and overstated the noise
    (issue #13); on 2048² with 240 dots, 77.
    """
    from latticefit import synth

    mg, truth = synth.haadf_dots(
        (1024, 1024), pixel_size_nm=0.1, diameter_nm=7.0, n_particles=60, n_touching_pairs=1, seed=3
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = find_particles(mg)
    s = res.summary
    assert s["n_detected"] >= 59, s["n_detected"]
    assert abs(s["mean_nm"] - truth.particles.diameter_nm[~truth.particles.edge].mean()) < 0.1


# ------------------------------------------------------------------ small faint dots pressed together
def test_hidden_dot_beside_a_like_neighbour_becomes_a_seed():
    from latticefit.particles import _kernels as K

    # one kept seed; candidates: a like dot touching it (free), one on it (covered), one alone far away,
    # and a weak bump beside it (a tenth of its significance)
    y, x, r, s = np.array([20.0]), np.array([20.0]), np.array([2.5]), np.array([10.0])
    cy = np.array([20.0, 20.5, 60.0, 20.0])
    cx = np.array([25.6, 21.0, 60.0, 14.4])
    cr = np.array([2.3, 2.5, 2.5, 2.5])
    cs = np.array([6.0, 9.0, 9.0, 1.0])
    got = C.free_candidates(y, x, r, s, cy, cx, cr, cs, prune=K.prune_blobs, overlap=0.4)
    assert got.tolist() == [0]


def test_outline_radius_of_a_sharp_sphere_and_the_level_factor():
    from latticefit.particles._steps import ecd_level_factor, outline_radius

    q = np.array([0.2, 0.4, 0.6, 0.8])
    np.testing.assert_allclose(outline_radius(q, np.full(4, 0.006)), np.sqrt(1 - q**2), atol=4e-3)
    # blur widens the profile: a faint dot's outline (3 sigma of the noise at 60 % of its peak) is smaller
    f = ecd_level_factor(np.array([0.2, 0.6]), np.array([0.8, 0.8]), np.array([2.5, 2.5]))
    assert f[0] == pytest.approx(1.0) and 0.6 < f[1] < 0.8


def _population(n=30, seed=0):
    rng = np.random.default_rng(seed)
    d = rng.normal(4.0, 0.3, n)
    return pd.DataFrame(
        {
            "diameter_nm": d,
            "ecd_nm": d / 1.1,
            "diameter_err_nm": np.full(n, 0.2),
            "x_err_px": np.full(n, 0.1),
            "y_err_px": np.full(n, 0.1),
            "chi2_red": np.ones(n),
            "fit_ok": np.ones(n, bool),
            "edge": np.zeros(n, bool),
            "cluster_unsplit": np.zeros(n, bool),
            "peak_height": 25.0 * d * rng.normal(1.0, 0.05, n),
            "outline_fraction": np.full(n, 0.2),
            "ecd_level_factor": np.ones(n),
        }
    )


def test_a_faint_dot_is_judged_at_its_own_outline_level_a_background_bump_is_not():
    t = _population()
    extra = pd.DataFrame(
        {
            "diameter_nm": [4.0, 4.2],
            "ecd_nm": [2.6, 2.6],  # fit/ECD 1.54 and 1.62: outside the 20 %-outline band
            "diameter_err_nm": [0.3, 0.3],
            "x_err_px": [0.1, 0.1],
            "y_err_px": [0.1, 0.1],
            "chi2_red": [1.0, 1.0],
            "fit_ok": [True, True],
            "edge": [False, False],
            "cluster_unsplit": [False, False],
            "peak_height": [80.0, 15.0],  # a faint dot (0.8 of the population) and a bump (0.15)
            "outline_fraction": [0.6, 0.75],
            "ecd_level_factor": [0.72, 0.6],
        }
    )
    out = check_fits(pd.concat([t, extra], ignore_index=True))
    assert out.status.iloc[-2] == "ok"
    assert out.reject_reason.iloc[-1] == "leaves_segment"
    assert (out.status.iloc[:-2] == "ok").all()


def test_several_touching_dots_fitted_as_one_sphere_are_a_cluster():
    t = _population()
    pair = t.iloc[:1].copy()
    pair["diameter_nm"], pair["ecd_nm"], pair["peak_height"] = 7.4, 6.0, 75.0  # H/D 0.4 of the population
    big = t.iloc[:1].copy()
    big["diameter_nm"], big["ecd_nm"], big["peak_height"] = 7.4, 6.5, 25.0 * 7.4  # one larger dot: stays
    out = check_fits(pd.concat([t, pair, big], ignore_index=True))
    assert out.status.iloc[-2] == "cluster" and out.reject_reason.iloc[-2] == "cluster_unsplit"
    assert not out.in_statistics.iloc[-2] and out.status.iloc[-1] == "ok"
    # a population of several materials (heights spread 3x): the height says nothing
    mixed = t.assign(peak_height=t.peak_height * np.exp(np.random.default_rng(1).normal(0, 1.0, len(t))))
    out = check_fits(pd.concat([mixed, pair], ignore_index=True))
    assert out.status.iloc[-1] == "ok"


def test_5px_dots_at_20_counts_per_px():
    # 4 nm dots at 0.8 nm/px (5 px) over a ramp and a film edge, 0.1-1 nm gaps: F1 0.84 before the hidden
    # dots beside like neighbours were seeded (single-scale maxima, then the fit residual) and faint dots
    # judged at their own outline level (0.98 now)
    mg, truth = benchmark_field("small", 4.0, 0.8, 20.0, 22)
    res, f1, bias = _sized(mg, truth, (2.4, 8.0))
    tp = truth.particles[~truth.particles.edge]
    rsd_true = 100 * tp.diameter_nm.std() / tp.diameter_nm.mean()
    assert f1 >= 0.96 and abs(bias) <= 1.0
    # dots found only in the fit residual (beside a fitted neighbour) are real dots
    hid = res.table[res.table.hidden]
    d, j = cKDTree(np.c_[truth.particles.x_px, truth.particles.y_px]).query(np.c_[hid.x_px, hid.y_px])
    assert res.settings["n_hidden_seeds"] >= 10 and len(hid) >= 10
    assert np.mean(d < truth.particles.diameter_px.to_numpy()[j] / 2) >= 0.95
    # a 5 px segment cut against its neighbours is seldom convex: that alone does not make it a cluster
    inner = res.table[res.table.status != "edge"]
    assert np.mean(inner.status == "cluster") <= 0.06  # 0.28 when the shape test alone decided
    assert abs(res.summary["rsd_corrected_percent"] - rsd_true) <= 1.0
    assert not res.table[res.table.status.isin(["cluster", "rejected"])].in_statistics.any()
    # the Fisher errors of such dots are ~10 % small (SD(z) against the truth 1.10 on this field without the
    # bootstrap factor); the parametric bootstrap of the fits measures that and scales them (here 1.13)
    boot = res.settings["error_bootstrap"]
    assert boot["applied"] and 1.05 < boot["diameter_factor"] < 1.3
    assert res.summary["diameter_error_bootstrap_factor"] == boot["diameter_factor"]
    s = res.table[res.table.in_statistics]
    d, j = cKDTree(np.c_[truth.particles.x_px, truth.particles.y_px]).query(np.c_[s.x_px, s.y_px])
    z = (s.diameter_nm.to_numpy() - truth.particles.diameter_nm.to_numpy()[j]) / s.diameter_err_nm.to_numpy()
    assert 0.92 < z.std() < 1.06  # ~850 dots: SE of SD(z) 0.025
    assert any("parametric bootstrap" in note for note in res.summary["notes"])


def test_a_film_edge_plateau_is_not_a_cluster():
    # 7 nm dots at 0.06 nm/px, 100 counts/px: near a corner the film edge is narrower than the opening of
    # the background, and its plateau was segmented, fitted (a 3.4 nm sphere 0.06 as high as the dots)
    # and counted as an unsplit cluster (F1 0.933 on 7 dots)
    mg, truth = benchmark_field("crowd", 7.0, 0.06, 100.0, 7)
    res, f1, bias = _sized(mg, truth, (3.5, 14.0))
    assert f1 == 1.0 and abs(bias) <= 1.0


# seeds 2 and 7: -1.52 % and -1.14 % bias with the probe sigma a plain median over the few isolated 6 px dots
# (0.13 -> 0.40 px over the merge rounds for a true 0.30); with the precision-weighted mean of sigma² (they
# agree there) -0.42 % and -0.64 % (seeds 0-7 all within 0.64 %)
@pytest.mark.parametrize("seed", [0, 2, 7])
def test_an_aggregate_at_low_sampling_splits_at_the_default_range(seed):
    # 15-40 touching 50 nm spheres per aggregate at 8 nm/px (6 px per diameter), searched at the default
    # range (24 nm to 1 um): each aggregate was one LoG blob of 11-28 px radius over dots of 2-3.5 px, whose
    # suppressed maxima lay below the split's 0.35 radius ratio (F1 0.63 / 0.73)
    mg, truth = haadf_crowded(
        (512, 512), pixel_size_nm=8.0, diameter_nm=50.0, n_groups=6, group_size=(15, 40), layouts=("aggregate",),
        n_isolated=5, gap_nm=(0.0, 3.0), overlap_frac=0.3, probe_sigma_nm=2.4, dose=50, seed=seed,
    )  # fmt: skip
    res, f1, bias = _sized(mg, truth, None)
    assert f1 >= 0.95 and abs(bias) <= 1.0


def test_150px_dots_at_a_high_dose_detected_on_their_rims_are_one_fit_each():
    # at the default range a 150 px dot at 200 counts/px is detected at two or three points of its rim at a
    # smaller scale; each fit found the dot but moved too far from its detection to pass: 13 detections of 12
    # dots, 6 of the 10 inner ones in the statistics. Their detections are moved onto the sphere they found
    mg, truth = haadf_dots(
        (1024, 1024), pixel_size_nm=0.2, diameter_nm=30.0, n_particles=12, n_touching_pairs=3, seed=5, dose=200
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = find_particles(mg)
    s, tp = res.summary, truth.particles
    assert s["n_detected"] == len(tp) and s["n"] == int((~tp.edge).sum())
    assert abs(s["mean_nm"] / tp.diameter_nm[~tp.edge].mean() - 1) < 0.003


def _overlapping_pair_field(angle, seed):
    """16 like 6 nm dots (0.5 nm/px, 100 counts over 20) and an 8 nm dot with a 4.5 nm one overlapping it
    (centres 9.5 px apart, radii 8 and 4.5 px): the small dot has no maximum of its own at any scale."""
    from latticefit.particles._hidden import render_spheres

    rng = np.random.default_rng(seed)
    g = np.array([25.0, 65.0, 135.0, 175.0])
    gx, gy = (a.ravel() for a in np.meshgrid(g, g))
    x = np.r_[gx, 100.0, 100.0 + 9.5 * np.cos(angle)]
    y = np.r_[gy, 100.0, 100.0 - 9.5 * np.sin(angle)]
    r = np.r_[rng.normal(6.0, 0.2, 16), 8.0, 4.5]
    img = 20.0 + render_spheres((200, 200), x, y, r, 100.0 * r / 6.0, np.ones(len(x)))
    return rng.poisson(img).astype(float), (x[-1], y[-1])


@pytest.mark.parametrize("angle, seed", [(0.7, 0), (1.5, 2)])
def test_a_dot_overlapping_a_brighter_one_is_found_and_outlined(angle, seed):
    # its projection overlaps the big dot's (the real JEOL file has one): the residual candidate lies inside
    # the pruning rule's reach of the big fit, and the two fits were merged as nested, so the big dot was
    # fitted over both (8.6 nm for 8.0) and the small one missed
    img, (xs, ys) = _overlapping_pair_field(angle, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = find_particles(img, pixel_size=0.5)
    t = res.table
    small = t.iloc[int(np.argmin(np.hypot(t.x_px - xs, t.y_px - ys)))]
    big = t.iloc[int(np.argmin(np.hypot(t.x_px - 100.0, t.y_px - 100.0)))]
    assert np.hypot(small.x_px - xs, small.y_px - ys) < 1.0 and small.hidden and small.in_statistics
    assert abs(small.diameter_nm - 4.5) < 0.25 and abs(big.diameter_nm - 8.0) < 0.25
    # the model splits the pair's segment: each outline is its own dot's (ECD within 10 % of its fit)
    assert abs(small.ecd_nm / small.diameter_nm - 1) < 0.1 and abs(big.ecd_nm / big.diameter_nm - 1) < 0.1
    assert res.summary["n"] == 18


def test_partition_by_model_gives_each_pixel_to_the_brightest_sphere():
    from types import SimpleNamespace

    from latticefit.particles._hidden import partition_by_model

    # one watershed label over two touching spheres (the hidden one, index 1, got none), a third elsewhere
    labels = np.zeros((20, 40), np.int32)
    labels[:, :24] = 1
    labels[:, 30:] = 3
    fit = SimpleNamespace(
        x=np.array([8.0, 17.0, 35.0]),
        y=np.full(3, 10.0),
        r=np.array([6.0, 4.0, 3.0]),
        h=np.array([2.0, 1.5, 1.0]),
        ok=np.ones(3, bool),
        group=np.array([0, 0, 1]),
        sigma_px=0.5,
    )
    out = partition_by_model(labels.copy(), fit, np.array([False, True, False]))
    assert out[10, 8] == 1 and out[10, 18] == 2 and out[10, 23] == 2  # split along the line of equal light
    assert (out[:, 30:] == 3).all() and (out[:, 24:30] == 0).all()  # other groups and the background untouched
    assert (partition_by_model(labels.copy(), fit, np.zeros(3, bool)) == labels).all()


@pytest.mark.realdata
def test_real_jeol_overlapping_dots_get_their_own_outlines(realdata, realfile):
    # beside the brightest dot (14 nm at (54, 63)): a dot overlapping it at its upper right, with no maximum of
    # its own, and a small dot above both. The bright dot's outline held the first (its ECD 17 nm), the small
    # one's fit failed
    from latticefit import io

    res = find_particles(io.load(realfile("particles/JEOL HAADF Image.dm4")))
    t = res.table

    def near(x, y):
        return t.iloc[int(np.argmin(np.hypot(t.x_px - x, t.y_px - y)))]

    lobe, big, top = near(60.5, 59.5), near(54.3, 62.8), near(58.0, 54.5)
    assert len({lobe.label, big.label, top.label}) == 3
    assert lobe.hidden and lobe.in_statistics and 6.0 < lobe.diameter_nm < 10.0
    # the small dot's top spans ~5 px (6-7 nm); fitted jointly with the lobe it grew to 9.0 nm (_refits.regrown)
    assert 5.0 < top.diameter_nm < 7.0 and np.hypot(top.x_px - 58.0, top.y_px - 54.5) < 1.0
    assert big.in_statistics and abs(big.ecd_nm / big.diameter_nm - 1) < 0.1
    assert top.fit_ok


@pytest.mark.realdata
def test_real_emi_neck_of_two_touching_particles_is_no_dot(realdata, realfile):
    # the residual where two touching 9-10 nm particles meet (their contact is brighter than two spheres') was
    # fitted as a 3.6 nm "hidden dot" whose disc lay 69 % inside its neighbours' (HIDDEN_MAX_COVERED)
    from latticefit import io

    res = find_particles(io.load(realfile("particles/03_Scanning Preview.emi"), frame="mean"))
    t = res.table
    assert not (np.hypot(t.x_px - 58.3, t.y_px - 49.3) < 3.0).any()
    assert len(t[(t.x_px > 50) & (t.x_px < 80) & (t.y_px > 25) & (t.y_px < 75)]) == 2


def test_a_member_grown_by_a_hidden_neighbour_is_fitted_again_alone():
    from dataclasses import fields

    from latticefit.particles._fit import _Fit
    from latticefit.particles._hidden import render_spheres
    from latticefit.particles._noise import estimate_noise_model
    from latticefit.particles._refits import regrown

    # a dot of radius 3 px and a far one; the joint refit "grew" the first to 4.5 px (1.5 px, 15 SE)
    x, y = np.array([20.0, 50.0]), np.array([20.0, 20.0])
    lam = 10.0 + render_spheres((40, 70), x, y, np.full(2, 3.0), np.full(2, 60.0), np.full(2, 0.7))
    img = np.random.default_rng(0).poisson(lam).astype(float)

    def fit(r, chi2_disc):
        arrays = {f.name: np.zeros(2) for f in fields(_Fit) if f.name != "sigma_px"}
        arrays.update(x=x, y=y, r=np.asarray(r, float), h=np.full(2, 60.0), r_err=np.full(2, 0.1))
        arrays.update(ok=np.ones(2, bool), group=np.arange(2), bg_surface=None, chi2_disc=np.asarray(chi2_disc))
        return _Fit(sigma_px=0.7, **arrays)

    noise, seeds = estimate_noise_model(img), dict(x=x, y=y, r=np.full(2, 3.0), first_row=np.array([0, 1]))
    first = fit([3.0, 3.0], [1.0, 1.0])
    out, n = regrown(img, first, fit([4.5, 3.1], [5.0, 5.0]), seeds, noise, None)
    assert n == 1 and abs(out.r[0] - 3.0) < 0.3 and out.r[1] == 3.1  # the other: within 25 %, kept
    # grown but its disc fitted as well as before: a first fit that was too small, corrected
    assert regrown(img, first, fit([4.5, 3.1], [1.5, 1.0]), seeds, noise, None)[1] == 0
    seeds["first_row"] = np.array([-1, 1])  # a hidden dot has no fit before: never "grown"
    assert regrown(img, first, fit([4.5, 3.1], [5.0, 5.0]), seeds, noise, None)[1] == 0


def test_fits_select_and_concat_keep_groups_apart():
    from dataclasses import fields

    from latticefit.particles._fit import _Fit

    def fit(n, group):
        arrays = {f.name: np.arange(n, dtype=float) for f in fields(_Fit) if f.name != "sigma_px"}
        arrays.update(ok=np.ones(n, bool), group=np.asarray(group))
        return _Fit(sigma_px=0.7, **arrays)

    a, b = fit(3, [0, 0, 1]), fit(2, [0, 1])
    c = a.select(np.array([True, False, True])).concat(b)
    assert c.group.tolist() == [0, 1, 2, 3] and c.x.tolist() == [0.0, 2.0, 0.0, 1.0] and c.sigma_px == 0.7


def test_local_refit_fits_only_the_components_with_a_candidate():
    from latticefit.particles._hidden import local_refit

    seeds = dict(x=np.array([10.0, 14.0, 80.0]), y=np.array([10.0, 10.0, 80.0]), r=np.full(3, 2.0))
    seeds["hidden_id"] = np.full(3, -1)
    cand = dict(x=np.array([18.0]), y=np.array([10.0]), r=np.array([2.0]), hidden_id=np.array([0]))

    class F:  # a first fit: all good, at the seeds
        ok = np.ones(3, bool)
        x, y, r, h = seeds["x"], seeds["y"], seeds["r"], np.ones(3)
        sigma_px = 0.5

        def select(self, keep):
            out = F()
            out.x, out.y, out.r, out.h, out.ok = self.x[keep], self.y[keep], self.r[keep], self.h[keep], self.ok[keep]
            return out

        def concat(self, other):
            return (self, other)

    seen = {}

    def refit(image, sd):
        seen["x"] = sd["x"].tolist()
        return "refit", sd

    (kept, _new), out = local_refit(np.zeros((100, 100)), F(), seeds, cand, refit)
    assert seen["x"] == [10.0, 14.0, 18.0]  # the touching pair and the candidate beside it
    assert kept.x.tolist() == [80.0] and out["x"].tolist() == [80.0, 10.0, 14.0, 18.0]


@pytest.mark.parametrize("dose, seed", [(20.0, 208), (100.0, 309)])
def test_background_between_rafted_dots_is_not_a_small_dot(dose, seed):
    """Small fits to the background in the gaps of a raft (H/D 0.22-0.32 of the dots') passed every shape
    test and entered the statistics: mean -3.0/-3.9 %, RSD +6/+9 pp on these benchmark fields (seeds the
    benchmark's --seed 200 / 300 make). A fit that low for its size is dropped as faint in one material."""
    from latticefit.particles._steps import _too_low_for_its_size

    mg, truth = benchmark_field("crowd", 7.0, 0.1, dose, seed)
    res, f1, bias = _sized(mg, truth, (3.5, 14.0))
    assert f1 >= 0.98 and abs(bias) <= 1.0
    tp = truth.particles
    st = res.table[res.table.in_statistics]
    dist, j = cKDTree(np.column_stack([tp.x_px, tp.y_px])).query(np.column_stack([st.x_px, st.y_px]))
    assert np.all(dist < 0.25 * tp.diameter_px.to_numpy()[j])  # every particle in the statistics is a dot
    # the rule itself: a population of one material, one fit at 0.3 of its H/D, one noisy dot at 0.45 +- 0.1
    d = np.full(12, 7.0)
    h = np.r_[np.linspace(95.0, 105.0, 10), 30.0, 45.0]
    err = np.r_[np.full(11, 1.0), 10.0]
    pop = np.r_[np.ones(10, bool), False, False]
    np.testing.assert_array_equal(_too_low_for_its_size(h, err, d, pop), np.r_[np.zeros(10, bool), True, False])


def test_an_exact_fit_beside_unmodelled_structure_is_not_rejected_for_it():
    """The group's chi2 counts the structure around a dot that its quadratic background cannot follow: an
    exact fit (6.93 nm for 6.95) had chi2_red 6.7 (median 1.05) and was rejected, though its own disc fits
    (2.2). The chi2 rule now asks both (benchmark field crowd 7 nm, 0.06 nm/px, 100 counts/px, --seed 200)."""
    mg, truth = benchmark_field("crowd", 7.0, 0.06, 100.0, 207)
    res, f1, bias = _sized(mg, truth, (3.5, 14.0))
    assert f1 >= 0.98 and abs(bias) <= 1.0
    t = res.table
    row = _only_row_near(t, 277.7, 167.2)
    assert bool(row.in_statistics)
    threshold = 5.0 * float(np.median(t.chi2_red[t.fit_ok & ~t.edge]))
    assert float(row.chi2_red) > threshold > float(row.chi2_red_disc)
    # a fit whose misfit is on its own disc (both values above the threshold) stays rejected
    table = pd.DataFrame(
        {
            "diameter_nm": [5.0] * 5,
            "ecd_nm": [5.0] * 5,
            "diameter_err_nm": [0.1] * 5,
            "chi2_red": [1.0, 1.1, 0.9, 8.0, 8.0],
            "chi2_red_disc": [1.0, 1.0, 1.0, 7.0, 2.0],
            "fit_ok": [True] * 5,
            "edge": [False] * 5,
            "cluster_unsplit": [False] * 5,
        }
    )
    assert check_fits(table).reject_reason.tolist() == ["", "", "", "chi2", ""]


def test_an_irregular_segment_of_a_large_single_dot_is_not_a_cluster():
    """A 55 px dot beside the sliver of a dot outside the frame has an irregular segment (solidity 0.83) but
    no wider than single dots' (fit/ECD 0.88): it was flagged cluster_unsplit and its field's mean came out
    +1.37 % (benchmark field crowd 4 nm, 0.06 nm/px, 100 counts/px, --seed 100)."""
    mg, truth = benchmark_field("crowd", 4.0, 0.06, 100.0, 101)
    res, f1, bias = _sized(mg, truth, (2.0, 8.0))
    assert f1 >= 0.98 and abs(bias) <= 1.0
    t = res.table
    row = _only_row_near(t, 467.8, 372.9)
    assert float(row.solidity) < 0.85 and bool(row.in_statistics)


def test_a_failed_fit_does_not_swallow_a_dot_beside_it():
    """A failed fit's parameters are wherever its solver stopped. The merge of nested detections used them:
    the failed corner fit (seed radius 49 px) swallowed the converged 4.1 nm dot beside it, and the dot was
    lost (benchmark field crowd 4 nm, 0.06 nm/px, 20 counts/px, --seed 300: F1 0.952)."""
    mg, truth = benchmark_field("crowd", 4.0, 0.06, 20.0, 300)
    res, f1, bias = _sized(mg, truth, (2.0, 8.0))
    assert f1 >= 0.98 and abs(bias) <= 1.0
    t = res.table
    assert bool(_only_row_near(t, 37.9, 80.1).in_statistics)


def test_watershed_markers_are_fitted_centres_where_the_detection_is_off_the_dot():
    """A dot by the border merged with its mirror image is detected 33 px from its centre: with that seed as
    the watershed marker its segment was a sliver of background (ECD 0.47 nm for a 3.3 nm dot) and the dot
    was dropped (crowd 4 nm, 0.06 nm/px, 20 counts/px, --seed 400). On a binned detection every converged fit
    marks its own segment (crowd 7 nm, 0.06 nm/px, 20 counts/px, --seed 200: a background bump was in the
    statistics and a dot flagged cluster_unsplit, F1 0.857)."""
    from types import SimpleNamespace

    from latticefit.particles._pipeline import _markers

    fit = SimpleNamespace(
        ok=np.array([True, True, False, True]),
        x=np.array([10.0, 474.0, 50.0, -3.0]),
        y=np.array([10.0, 315.7, 50.0, 20.0]),
        r=np.array([5.0, 27.8, 5.0, 9.0]),
    )
    seeds = {"x": np.array([11.0, 506.5, 70.0, 20.0]), "y": np.array([10.0, 321.8, 50.0, 20.0])}
    full = _markers(fit, seeds, (512, 512), 1)
    np.testing.assert_allclose(full["x"], [11.0, 474.0, 70.0, 20.0])  # off its disc; failed; centre outside
    binned = _markers(fit, seeds, (512, 512), 2)
    np.testing.assert_allclose(binned["x"], [10.0, 474.0, 70.0, 20.0])

    mg, truth = benchmark_field("crowd", 4.0, 0.06, 20.0, 400)
    res, f1, _ = _sized(mg, truth, (2.0, 8.0))
    t = res.table
    assert f1 >= 0.98 and _only_row_near(t, 474.9, 315.5).status != "rejected"
    mg, truth = benchmark_field("crowd", 7.0, 0.06, 20.0, 206)
    res, f1, bias = _sized(mg, truth, (3.5, 14.0))
    assert f1 >= 0.98 and abs(bias) <= 1.0


def test_a_weak_failed_detection_between_dots_is_background():
    """A broad bump of the background between 7 nm dots (LoG strength 10 against the dots' ~70) failed its fit
    and was counted as an unsplit cluster: its mean contrast, 0.43 of the dots', passed the contrast test
    (crowd 7 nm, 0.06 nm/px, 20 counts/px, --seed 400: F1 0.923). A failed fit by the border stays: the
    sliver of a particle outside the frame is weak too, and a particle."""
    mg, truth = benchmark_field("crowd", 7.0, 0.06, 20.0, 406)
    res, f1, bias = _sized(mg, truth, (3.5, 14.0))
    assert f1 >= 0.98 and abs(bias) <= 1.0
    t = res.table
    assert not (np.hypot(t.x_px - 426.3, t.y_px - 304.2) < 20).any()
    # dropped as background: faint, or (its fit moved onto a sphere another fit holds) merged and insignificant
    assert res.settings["n_faint_dropped"] + res.settings["n_dropped"] >= 1


@pytest.mark.parametrize(("pix", "seed", "x", "y"), [(0.1, 109, 463.4, 360.1), (0.06, 807, 382.6, 192.0)])
def test_a_dot_on_a_film_step_is_not_rejected_for_the_step(pix, seed, x, y):
    """A step of the film under a dot misfits the dot's disc (6.6 and 23.5) but the pixels around it as much
    (6.6 and 19.9): exact fits (8.00 nm for 8.00, 8.36 for 8.39) were rejected by the chi2 rule and the
    largest dot of the field was lost from its mean (-3.5 %; crowd 7 nm, 100 counts/px, --seed 100 / 800)."""
    mg, truth = benchmark_field("crowd", 7.0, pix, 100.0, seed)
    res, f1, bias = _sized(mg, truth, (3.5, 14.0))
    assert f1 >= 0.98 and abs(bias) <= 1.0
    t = res.table
    row = _only_row_near(t, x, y)
    assert bool(row.in_statistics)
    assert row.chi2_red_disc > 5.0 * float(np.median(t.chi2_red[t.fit_ok & ~t.edge]))
    assert row.chi2_red_disc < 2.0 * row.chi2_red_background


@pytest.mark.parametrize(
    ("d", "seed", "x", "y", "d_true"),
    [(7.0, 1006, 445.2, 435.8, 5.783), (4.0, 400, 474.0, 315.7, 3.286)],
)
def test_a_dot_on_a_film_strip_is_outlined_on_its_own_background(d, seed, x, y, d_true):
    """A film strip narrower than the background's opening (a 512² field of 7 / 4 nm dots at 0.06 nm/px,
    20 counts/px) stays in the background-subtracted image, and the segment of a dot on it flooded the strip:
    ECD 8.3 nm for a 5.80 nm fit of a 5.78 nm dot, 6.1 for 3.34 (3.29), rejected / flagged, the field's F1
    0.857 and bias +6.7 % (--seed 1000), bias +1.3 % (--seed 400). Its segment is now re-drawn at the fit's
    own background."""
    mg, truth = benchmark_field("crowd", d, 0.06, 20.0, seed)
    res, f1, bias = _sized(mg, truth, (0.5 * d, 2 * d))
    row = _only_row_near(res.table, x, y)
    assert row.status == "ok" and bool(row.in_statistics)
    assert abs(row.diameter_nm / d_true - 1) < 0.02 and abs(row.ecd_nm / row.diameter_nm - 1) < 0.1
    assert f1 == 1.0 and abs(bias) <= 1.0


def test_own_background_cut_needs_a_fit_that_describes_its_dot():
    """The cut is only for a fit that leaves little misfit and whose own background stands above the image's
    under the flood (a bump on a faint rod, its segment flooding the rod, keeps its segment)."""
    from types import SimpleNamespace

    from latticefit.particles._own_background import MAX_MISFIT, flooding

    labels = np.zeros((60, 60), np.int32)
    yy, xx = np.mgrid[:60, :60]
    labels[np.hypot(xx - 30, yy - 30) < 14] = 1  # a segment of ECD 28 px around a 20 px fit
    fit = SimpleNamespace(
        x=np.array([30.0]), y=np.array([30.0]), r=np.array([10.0]), h=np.array([1.0]), ok=np.array([True]),
        misfit=np.array([0.04]),
    )  # fmt: skip
    assert flooding(labels, fit, {}).tolist() == [True]
    fit.misfit = np.array([MAX_MISFIT + 0.03])  # the rod fragments on the Velox view: 0.13-0.14
    assert flooding(labels, fit, {}).tolist() == [False]
    fit.misfit, fit.r = np.array([0.04]), np.array([13.0])  # the segment agrees with the fit
    assert flooding(labels, fit, {}).tolist() == [False]


def test_crowd_splitting_tries_every_candidate_radius_as_the_cap():
    from latticefit.particles import _kernels as K

    # a blob r 10 holding two dots of r 5 side by side, and a weaker r 5.8 maximum overlapping both: with it
    # the tiling fails, and a fixed ladder of caps (0.6, then 0.45 r) went from with it to without the dots
    y, x, r, s = np.array([50.0]), np.array([50.0]), np.array([10.0]), np.array([20.0])
    cy, cx = np.array([50.0, 50.0, 57.0]), np.array([45.0, 55.0, 50.0])
    cr, cs = np.array([5.0, 5.0, 5.8]), np.array([10.0, 10.0, 8.0])
    keep, extra = C.split_crowds(y, x, r, s, np.array([True]), cy, cx, cr, cs, prune=K.prune_blobs, overlap=0.4)
    assert not keep[0] and list(extra) == [0, 1]


def test_a_dot_beside_two_border_dots_is_split_from_them():
    # one LoG blob (r 33 px) held a 4 nm dot and two dots cut by the border; fitted as one 9.8 nm sphere
    # centred outside the frame, the dot was lost (bench_particles_crowded --seed 600, F1 0.966, bias -1.0 %)
    mg, truth = benchmark_field("crowd", 4.0, 0.06, 20.0, 600)
    res, f1, bias = _sized(mg, truth, (2.0, 8.0))
    assert f1 >= 0.99 and abs(bias) <= 0.5


def test_chi2_of_a_detector_with_a_dark_level_is_taken_at_the_model_variance():
    # var = gain (I - I_dark), not integer counts: a bright dot's own shot noise is ~30 x the background's.
    # The chi2 of exact fits was taken against the background's variance (11-22 on the discs here; 1500-4000
    # on the bright dots of the real Velox view, which were rejected for it); it is ~1 now.
    mg, _truth = haadf_dots(
        (384, 384),
        pixel_size_nm=0.5,
        diameter_nm=8.0,
        n_particles=25,
        n_touching_pairs=2,
        dose=None,
        background=1.0,
        gradient=0.0,
        particle_contrast=30.0,
        probe_sigma_nm=0.5,
        seed=3,
    )
    rng = np.random.default_rng(1)
    mg.data = 9160.3 + 4.05 * rng.poisson(50.0 * np.asarray(mg.data, float)) + rng.normal(0, 1.5, mg.data.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = find_particles(mg, diameter_range_nm=(4.0, 16.0))
    t = res.table
    assert 0.8 < t.chi2_red_disc.median() < 1.3 and 0.8 < t.chi2_red.median() < 1.3
    assert (t.misfit_fraction < 0.03).all() and res.summary["n"] == 25


@pytest.mark.realdata
def test_bright_dots_of_the_velox_view_are_in_the_statistics(realfile):
    # a chain of three touching bright dots beside a large sphere, and a bright dot beside another: chi2 of
    # 213-498 against the background's variance had rejected them (their shot noise), like-looking bright dots
    # elsewhere had passed (no finite chi2 at a background below the dark level)
    from latticefit import io

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = find_particles(io.load(realfile("particles/EMDReader_Image_FEI.emd"))).table
    for x, y in ((50.0, 331.8), (45.1, 339.9), (39.1, 345.7), (502.4, 155.0)):
        row = _only_row_near(t, x, y)
        assert row.status == "ok" and row.in_statistics and row.misfit_fraction < 0.1
    assert np.isfinite(t[t.fit_ok].chi2_red).all()


@pytest.mark.realdata
def test_the_bar_on_the_velox_view_is_not_cut_into_spheres(realfile):
    """The elongated faint object at x 140-200, y 305-320 px sits on a raised halo. Its fragments' fits
    (misfit 0.13-0.14) re-drawn at their own background would enter the statistics as 49 and 52 nm spheres;
    the small round blobs above it on the halo (misfit <= 0.03) are outlined one each. (The faintest of them,
    26 nm = 5 px at (172, 267), is no longer listed since the LoG noise is measured with the mask taken by
    blocks: its 23 px segment has solidity 0.84 < 0.85, is flagged an unsplit cluster and dropped as faint.)"""
    from latticefit import io

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = find_particles(io.load(realfile("particles/EMDReader_Image_FEI.emd"))).table
    bar = t[(t.x_px > 140) & (t.x_px < 200) & (t.y_px > 300) & (t.y_px < 325)]
    assert len(bar) and not bar.in_statistics.any()
    for x, y in ((175.0, 281.2), (177.7, 291.8)):
        row = _only_row_near(t, x, y)
        assert row.in_statistics and abs(row.ecd_nm / row.diameter_nm - 1) < 0.15


@pytest.mark.parametrize(
    "kind, d, pix, dose, seed, what",
    [
        # a raft dot whose centre pixel lay at the background started at height ~0; its centre and radius then
        # do not enter the model, it ran off to 1e5 px and the singular Fisher matrix failed its whole group:
        # two rafts of 7 and 8 dots lost (F1 0.973)
        ("small", 4.0, 0.5, 20.0, 816, "start height"),
        # with that start, a film-edge plateau among 4 dots converged to a sphere 0.13 as high as a dot of its
        # size (bias -5.4 %); the H/D population test needs 4 fits, not 10
        ("crowd", 7.0, 0.06, 100.0, 1107, "bump among few dots"),
    ],
)
def test_start_heights_and_bumps_among_few_dots(kind, d, pix, dose, seed, what):
    mg, truth = benchmark_field(kind, d, pix, dose, seed)
    res, f1, bias = _sized(mg, truth, (max(0.5 * d, 3 * pix), 2 * d))
    assert f1 >= 0.99 and abs(bias) <= 0.5, what
