"""Part of :mod:`_indexing` (see its docstring): index_results."""

from __future__ import annotations

from dataclasses import dataclass, field

from ._phases import (
    Phase,
    format_hkl,
    hkl_to_hkil,
    uvw_to_uvtw,
)


# ------------------------------------------------------------ results
@dataclass(eq=False)
class IndexingSolution:
    """One explanation of the spots: phase, zone axis, orientation, scale and per-spot labels.

    Attributes
    ----------
    phase : Phase
    zone_axis : (u, v, w)
        Zone axis (three-index; :attr:`zone_axis_4` for hexagonal phases).
    rotation_deg : float
        Azimuth in the image (x right, y down) of the zone frame's x axis.
    mirrored : bool
        The net appears mirrored, i.e. it is viewed along ``-[uvw]`` in the frame convention of
        :func:`latticefit.crystal.zone_frame` (the sign of a zone axis is not observable in an FFT).
    scale_factor, scale_factor_err : float
        Implied calibration factor ``true pixel size / file pixel size`` (``g_obs = k g_calc``)
        from the matched spots, with its 1-sigma error.
    free_scale : bool
        Whether the scale was free during the search (else it was fixed at 1).
    score : float
        Total cost (lower is better), see the module docstring.
    spots : pandas.DataFrame
        One row per observed spot: gx_inv_nm, gy_inv_nm, d_angstrom, h, k, l, status
        (``allowed``/``extinct``/``unmatched``), d_calc_angstrom, residual_angstrom (scale-corrected
        d minus d_calc), angle_residual_deg, chi2, extinction_reason.
    """

    phase: Phase
    zone_axis: tuple
    rotation_deg: float
    mirrored: bool
    scale_factor: float
    scale_factor_err: float
    free_scale: bool
    score: float
    spots: object
    n_missing: int = 0
    zone_determined: bool = True

    @property
    def n_spots(self) -> int:
        return int(len(self.spots))

    @property
    def n_matched(self) -> int:
        """Spots explained by an allowed reflection."""
        return int((self.spots["status"] == "allowed").sum())

    @property
    def n_extinct(self) -> int:
        """Spots that only an extinct reflection of this phase explains."""
        return int((self.spots["status"] == "extinct").sum())

    @property
    def fraction_matched(self) -> float:
        return self.n_matched / max(self.n_spots, 1)

    @property
    def chi2_reduced(self) -> float:
        """Mean chi-square per matched spot and dimension (in units of tolerance / 3)."""
        m = self.spots["status"] == "allowed"
        return float(self.spots.loc[m, "chi2"].sum() / max(2 * int(m.sum()), 1))

    @property
    def zone_axis_4(self):
        """Four-index [UVTW] for hexagonal phases, else None."""
        return uvw_to_uvtw(self.zone_axis) if self.phase.is_hexagonal else None

    def summary(self) -> dict:
        """Short JSON-ready record (used for the alternatives)."""
        out = {
            "phase": self.phase.name,
            "space_group": self.phase.space_group,
            "zone_axis": list(self.zone_axis),
            "score": self.score,
            "n_spots": self.n_spots,
            "n_matched": self.n_matched,
            "n_extinct": self.n_extinct,
            "n_missing": self.n_missing,
            "fraction_matched": self.fraction_matched,
            "chi2_reduced": self.chi2_reduced,
            "scale_factor": self.scale_factor,
            "scale_factor_err": self.scale_factor_err,
            "rotation_deg": self.rotation_deg,
            "mirrored": self.mirrored,
            "zone_determined": self.zone_determined,
        }
        if self.phase.is_hexagonal:
            out["zone_axis_4"] = list(self.zone_axis_4)
        return out

    def describe(self) -> str:
        za = "[" + " ".join(str(v) for v in self.zone_axis) + "]"
        if self.phase.is_hexagonal:
            za += " = [" + " ".join(str(v) for v in self.zone_axis_4) + "]"
        if not self.zone_determined:
            za += " (undetermined: the matched spots form one plane family)"
        return (
            f"{self.phase.label} zone {za}: {self.n_matched}/{self.n_spots} spots allowed"
            f"{f', {self.n_extinct} extinct' if self.n_extinct else ''}, score {self.score:.1f}, "
            f"scale {self.scale_factor:.4f} ± {self.scale_factor_err:.4f}"
        )

    def __repr__(self) -> str:
        return f"IndexingSolution({self.describe()})"


@dataclass(eq=False)
class IndexingResult:
    """Best solution, ranked runner-ups and per-spot extinction flags across the candidate phases.

    ``spots`` is the best solution's per-spot table plus ``phase`` and ``extinct_in`` (names of the
    candidate phases whose best solution needs an extinct reflection for that spot) and
    ``extinction_reasons``.
    """

    best: IndexingSolution | None
    alternatives: list
    spots: object
    phases: list
    free_scale: bool
    elapsed_s: float
    lattice: dict | None = None
    per_phase_best: dict = field(default_factory=dict)

    @property
    def phase(self):
        return None if self.best is None else self.best.phase

    @property
    def zone_axis(self):
        return None if self.best is None else self.best.zone_axis

    @property
    def scale_factor(self):
        return None if self.best is None else self.best.scale_factor

    @property
    def scale_factor_err(self):
        return None if self.best is None else self.best.scale_factor_err

    def to_dict(self) -> dict:
        """The lattice JSON contract plus indexing keys (``zone_axis``, ``phase``, ``scale_factor`` ...)."""
        out = dict(self.lattice) if self.lattice else {}
        spots_in = list(out.get("spots") or [])
        rows = []
        for i, r in enumerate(self.spots.to_dict("records")):
            base = (
                dict(spots_in[i])
                if i < len(spots_in)
                else {"g_inv_nm": [r["gx_inv_nm"], r["gy_inv_nm"]], "d_angstrom": r["d_angstrom"]}
            )
            if r["status"] == "unmatched":
                base["hkl"] = None
            else:
                base["hkl"] = [int(r["h"]), int(r["k"]), int(r["l"])]
                if self.best is not None and self.best.phase.is_hexagonal:
                    base["hkil"] = list(hkl_to_hkil((r["h"], r["k"], r["l"])))
            base["phase"] = r["phase"]
            base["status"] = r["status"]
            base["d_calc_angstrom"] = r["d_calc_angstrom"]
            base["residual_angstrom"] = r["residual_angstrom"]
            base["angle_residual_deg"] = r["angle_residual_deg"]
            base["extinct_in"] = list(r["extinct_in"])
            base["extinction_reasons"] = list(r["extinction_reasons"])
            rows.append(base)
        out["spots"] = rows
        b = self.best
        out["phase"] = None if b is None else b.phase.name
        out["space_group"] = None if b is None else b.phase.space_group
        out["zone_axis"] = None if b is None else list(b.zone_axis)
        if b is not None and b.phase.is_hexagonal:
            out["zone_axis_4"] = list(b.zone_axis_4)
        out["scale_factor"] = None if b is None else b.scale_factor
        out["scale_factor_err"] = None if b is None else b.scale_factor_err
        out["free_scale"] = self.free_scale
        out["indexing"] = None if b is None else b.summary()
        out["alternatives"] = [a.summary() for a in self.alternatives]
        out["phases_searched"] = [p.name for p in self.phases]
        out["indexing_time_s"] = self.elapsed_s
        return out

    @property
    def table(self):
        """The spots with their indexing (``status``, ``h``, ``k``, ``l``, ...) as a pandas DataFrame."""
        return self.spots

    def __str__(self) -> str:
        """Readable multi-line report."""
        lines = []
        if self.best is None:
            lines.append("no solution: no candidate phase/zone explains two spots")
        else:
            b = self.best
            mode = "free" if self.free_scale else "fixed"
            lines.append(f"best: {b.describe()} ({mode} scale), rotation {b.rotation_deg:.1f}°")
            lines.append(
                f"{'#':>3} {'d (Å)':>7} {'hkl':>10} {'d_calc':>7} {'resid(Å)':>9} {'dφ(°)':>6}  status / flags"
            )
            for i, r in enumerate(self.spots.to_dict("records")):
                if r["status"] == "unmatched":
                    hkl = "-"
                elif self.best.phase.is_hexagonal:
                    hkl = format_hkl(hkl_to_hkil((r["h"], r["k"], r["l"])))
                else:
                    hkl = format_hkl((r["h"], r["k"], r["l"]))
                dc = "" if r["status"] == "unmatched" else f"{r['d_calc_angstrom']:.4f}"
                res = "" if r["status"] == "unmatched" else f"{r['residual_angstrom']:+.4f}"
                da = "" if r["status"] == "unmatched" else f"{r['angle_residual_deg']:+.2f}"
                flags = r["status"]
                if r["status"] == "extinct" and r["extinction_reason"]:
                    flags += ": " + r["extinction_reason"]
                others = [p for p in r["extinct_in"] if self.best is None or p != self.best.phase.name]
                if len(others) == 1:
                    flags += "; " + [w for p, w in zip(r["extinct_in"], r["extinction_reasons"]) if p == others[0]][0]
                elif others:
                    flags += "; needs an extinct reflection in " + ", ".join(others)
                lines.append(f"{i:>3} {r['d_angstrom']:7.4f} {hkl:>10} {dc:>7} {res:>9} {da:>6}  {flags}")
        if self.alternatives:
            lines.append("alternatives:")
            for j, a in enumerate(self.alternatives, 2):
                lines.append(f"  {j}. {a.describe()}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"IndexingResult(best={self.best!r}, {len(self.alternatives)} alternatives)"
