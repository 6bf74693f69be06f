"""``OUT/index.html``: the batch summary as one self-contained, sortable page with thumbnails.

No network: the styles and the sorting/filtering script are inline, the
thumbnails are the per-file PNG figures, linked by relative paths, so the
folder can be zipped, moved and opened offline in any browser.
"""

from __future__ import annotations

import html
import math
from pathlib import Path, PurePosixPath
from urllib.parse import quote

import pandas as pd

from ._plotstyle import format_uncertain
from .serialize import atomic_write_text

__all__ = ["index_html", "write_index_html", "PAGE_COLUMNS"]

#: summary columns shown on the page, in this order, when present (the CSV holds them all)
PAGE_COLUMNS = [
    "file", "signal", "analysis", "status",
    "n_spots", "d_angstrom", "basis_angle_deg", "phase", "zone_axis",
    "n_particles", "mean_nm", "std_nm", "rsd_percent",
    "acquisition_mode", "analysis_reason", "shape_px", "pixel_size_nm", "time_s",
]
#: columns shown as ``value ± error`` (sorted by the value)
_WITH_ERROR = {"d_angstrom": ("d_err_angstrom", "Å"), "basis_angle_deg": ("basis_angle_err_deg", "°"),
               "mean_nm": ("mean_err_nm", "nm")}
_HEADERS = {"d_angstrom": "strongest d (Å)", "basis_angle_deg": "basis angle (°)", "mean_nm": "mean (nm)",
            "std_nm": "std (nm)", "rsd_percent": "RSD (%)", "n_particles": "n particles", "n_spots": "n spots",
            "pixel_size_nm": "pixel (nm)", "time_s": "time (s)", "analysis_reason": "why this analysis",
            "acquisition_mode": "mode", "shape_px": "shape (px)", "zone_axis": "zone axis"}

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:1.2em;color:#111}
h1{font-size:1.3em;margin:0 0 .3em}
p.meta{color:#444;margin:.2em 0 .8em}
input#filter{font-size:1em;padding:.25em .5em;width:22em;margin-bottom:.6em}
table{border-collapse:collapse;font-size:.85em}
th,td{border:1px solid #ccc;padding:3px 6px;vertical-align:middle}
th{background:#f0f0f0;cursor:pointer;user-select:none;position:sticky;top:0;white-space:nowrap}
th.asc::after{content:" \\25B2"}th.desc::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.error td{background:#fde8e1}tr.skipped td{background:#f4f4f4;color:#666}
td.msg{max-width:28em;font-size:.9em;color:#7a2a00}
img.thumb{width:180px;height:auto;display:block;border:0}
a{color:#0059a6}
"""

_JS = """
(function(){
  var table=document.getElementById('summary');
  var tbody=table.tBodies[0];
  function key(td){var v=td.getAttribute('data-sort');if(v===null){v=td.textContent;}
    var n=parseFloat(v);return (v!==''&&!isNaN(n)&&isFinite(v))?{n:true,v:n}:{n:false,v:v.toLowerCase()};}
  Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th,col){
    th.addEventListener('click',function(){
      var asc=!th.classList.contains('asc');
      Array.prototype.forEach.call(table.tHead.rows[0].cells,function(h){h.classList.remove('asc','desc');});
      th.classList.add(asc?'asc':'desc');
      var rows=Array.prototype.slice.call(tbody.rows);
      rows.sort(function(a,b){var x=key(a.cells[col]),y=key(b.cells[col]);
        if(x.v===''&&y.v!=='')return 1;if(y.v===''&&x.v!=='')return -1;
        var c;if(x.n&&y.n){c=x.v-y.v;}else{c=String(x.v).localeCompare(String(y.v));}
        return asc?c:-c;});
      rows.forEach(function(r){tbody.appendChild(r);});
    });
  });
  var f=document.getElementById('filter');
  f.addEventListener('input',function(){var q=f.value.toLowerCase();
    Array.prototype.forEach.call(tbody.rows,function(r){
      r.style.display=r.textContent.toLowerCase().indexOf(q)>=0?'':'none';});});
})();
"""


def _href(relpath: str) -> str:
    """A relative URL for a '/'-separated path under OUT (spaces, '#', '%' quoted)."""
    return quote(PurePosixPath(relpath).as_posix(), safe="/")


def _is_missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (not isinstance(v, str) and pd.isna(v))


def _cell(col: str, v) -> str:
    if _is_missing(v):
        return '<td data-sort=""></td>'
    if isinstance(v, bool):
        return f"<td>{'yes' if v else 'no'}</td>"
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        fv = float(v)
        if fv.is_integer() and abs(fv) < 1e15 and col.startswith("n_"):
            text = f"{int(fv)}"
        elif col.endswith("_s"):
            text = f"{fv:.2f}"
        else:
            text = f"{fv:.4g}"
        return f'<td class="num" data-sort="{fv!r}">{html.escape(text)}</td>'
    return f"<td>{html.escape(str(v))}</td>"


def index_html(summary: pd.DataFrame, *, title: str = "latticefit batch") -> str:
    """The page for a batch summary (links relative to the folder holding ``summary.csv``).

    Parameters
    ----------
    summary : DataFrame
        The batch summary (``latticefit.batch.run`` result or ``summary.csv``).
    title : str
        Page title.

    Returns
    -------
    str
        A complete HTML document with inline CSS and JavaScript: click a column
        header to sort, type in the box to filter rows, click a thumbnail for
        the full figure and a file name for its JSON result.

    Examples
    --------
    >>> import pandas as pd
    >>> page = index_html(pd.DataFrame([{"file": "a b.dm4", "signal": "", "analysis": "lattice", "status": "ok",
    ...                                   "figure": "a b.dm4.lattice.png", "json": "a b.dm4.lattice.json"}]))
    >>> 'src="a%20b.dm4.lattice.png"' in page
    True
    """
    cols = [c for c in PAGE_COLUMNS if c in summary.columns]
    n_files = summary["file"].nunique() if "file" in summary else 0
    status = summary["status"] if "status" in summary else pd.Series(dtype=str)
    failed = summary.loc[status == "error", "file"].nunique() if len(summary) else 0
    skipped = summary.loc[status == "skipped", "file"].nunique() if len(summary) else 0
    head = "".join(f"<th>{html.escape(_HEADERS.get(c, c))}</th>" for c in ["figure"] + cols + ["error / warnings"])
    body = []
    for rec in summary.to_dict(orient="records"):
        st = str(rec.get("status") or "")
        cls = f' class="{html.escape(st)}"' if st in ("error", "skipped") else ""
        fig = rec.get("figure")
        if isinstance(fig, str) and fig:
            thumb = (f'<td><a href="{_href(fig)}"><img class="thumb" loading="lazy" src="{_href(fig)}" '
                     f'alt="{html.escape(fig)}"></a></td>')
        else:
            thumb = '<td data-sort=""></td>'
        cells = [thumb]
        for c in cols:
            v = rec.get(c)
            if c == "file" and isinstance(rec.get("json"), str) and rec.get("json"):
                cells.append(f'<td data-sort="{html.escape(str(v))}"><a href="{_href(rec["json"])}">'
                             f"{html.escape(str(v))}</a></td>")
            elif c in _WITH_ERROR and not _is_missing(v) and not isinstance(v, str):
                err = rec.get(_WITH_ERROR[c][0])
                text = format_uncertain(float(v), None if _is_missing(err) else float(err))
                cells.append(f'<td class="num" data-sort="{float(v)!r}">{html.escape(text)}</td>')
            else:
                cells.append(_cell(c, v))
        msg = " | ".join(str(rec[k]) for k in ("error", "warnings") if isinstance(rec.get(k), str) and rec.get(k))
        cells.append(f'<td class="msg">{html.escape(msg)}</td>')
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    links = " · ".join(f'<a href="{n}">{n}</a>' for n in ("summary.csv", "spots.csv", "particles.csv", "errors.csv"))
    t = html.escape(title)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{t}</title>\n"
        f"<style>{_CSS}</style>\n</head>\n<body>\n<h1>{t}</h1>\n"
        f"<p class=\"meta\">{n_files} files · {len(summary)} rows · {failed} failed · {skipped} skipped · {links}</p>\n"
        "<input id=\"filter\" type=\"search\" placeholder=\"filter rows…\" aria-label=\"filter rows\">\n"
        f"<table id=\"summary\">\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) +
        f"\n</tbody>\n</table>\n<script>{_JS}</script>\n</body>\n</html>\n"
    )


def write_index_html(path, summary: pd.DataFrame, *, title: str = "latticefit batch") -> Path:
    """Write :func:`index_html` to ``path`` atomically; returns the path."""
    path = Path(path)
    atomic_write_text(path, index_html(summary, title=title))
    return path
