"""Run ParticleSpy's documented pipeline on .npy images; called by bench_particles_crowded.py in its own venv.

Usage (the benchmark does this)::

    /work/venv-particlespy/bin/python benchmarks/_particlespy_worker.py JOBS.json OUT.json

``JOBS.json`` is a list of ``{"npy": path, "pixel_size_nm": p, "gaussian_px": s, "watershed_size_px": m}``.
For each image: a hyperspy Signal2D with nm axes, ``ps.parameters().generate(threshold="otsu",
watershed=True, watershed_size=m, gaussian=s)`` (Otsu + distance-transform watershed after a Gaussian
pre-filter, the pipeline of ParticleSpy's documentation; its ``clear_border`` drops particles cut by the border)
and ``ps.particle_analysis``. Writes per image the particles' centre (x, y in px) and ECD (nm).
"""

import json
import sys
import time
import warnings

import numpy as np


def main(jobs_path, out_path):
    warnings.simplefilter("ignore")
    import hyperspy.api as hs
    import particlespy.api as ps

    with open(jobs_path) as fh:
        jobs = json.load(fh)
    out = []
    for job in jobs:
        img = np.load(job["npy"]).astype(np.float32)
        s = hs.signals.Signal2D(img)
        for ax in s.axes_manager.signal_axes:
            ax.scale = float(job["pixel_size_nm"])
            ax.units = "nm"
        p = ps.parameters()
        p.generate(
            threshold="otsu",
            watershed=True,
            watershed_size=int(job["watershed_size_px"]),
            gaussian=float(job["gaussian_px"]),
        )
        t0 = time.perf_counter()
        plist = ps.particle_analysis(s, p)
        dt = time.perf_counter() - t0
        rows = []
        for q in plist.list:
            pr = q.properties
            # particlespy stores centroid[0] (row) as "x" and centroid[1] (column) as "y", both scaled
            rows.append(
                {
                    "y_px": pr["x"]["value"] / job["pixel_size_nm"],
                    "x_px": pr["y"]["value"] / job["pixel_size_nm"],
                    "ecd_nm": pr["equivalent circular diameter"]["value"],
                }
            )
        out.append({"npy": job["npy"], "particles": rows, "seconds": dt})
    with open(out_path, "w") as fh:
        json.dump(out, fh)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
