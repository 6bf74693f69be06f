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

from .._plotstyle import format_uncertain
from ..serialize import atomic_write_text

__all__ = ["index_html", "write_index_html", "format_number", "PAGE_COLUMNS"]

#: summary columns shown on the page, in this order, when present (the CSV holds them all)
#: (``message`` is the error of a failed row, else its warnings; next to ``status`` so that it is on screen)
PAGE_COLUMNS = [
    "file",
    "signal",
    "analysis",
    "status",
    "message",
    "n_spots",
    "d_angstrom",
    "basis_angle_deg",
    "phase",
    "zone_axis",
    "n_indexed",
    "scale_factor",
    "n_particles",
    "mean_nm",
    "std_nm",
    "rsd_percent",
    "acquisition_mode",
    "analysis_reason",
    "shape_px",
    "pixel_size_x_nm",
    "time_s",
]
#: columns shown as ``value ± error`` (sorted by the value), rounded to the error's precision
_WITH_ERROR = {
    "d_angstrom": "d_err_angstrom",
    "basis_angle_deg": "basis_angle_err_deg",
    "mean_nm": "mean_err_nm",
    "scale_factor": "scale_factor_err",
}
#: columns without an error of their own, shown with the decimals of another column's value ± error
_SAME_DECIMALS_AS = {"std_nm": "mean_nm"}
#: fixed decimals
_DECIMALS = {"rsd_percent": 1, "time_s": 2}
_HEADERS = {
    "d_angstrom": "strongest d (Å)",
    "basis_angle_deg": "basis angle (°)",
    "mean_nm": "mean (nm)",
    "std_nm": "std (nm)",
    "rsd_percent": "RSD (%)",
    "n_particles": "n particles",
    "n_spots": "n spots",
    "pixel_size_x_nm": "pixel x (nm)",
    "time_s": "time (s)",
    "analysis_reason": "why this analysis",
    "acquisition_mode": "mode",
    "shape_px": "shape (px)",
    "zone_axis": "zone axis",
    "message": "error / warnings",
    "n_indexed": "n indexed",
    "scale_factor": "scale factor",
}

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:1.2em;color:#111}
h1{font-size:1.3em;margin:0 0 .3em}
p.meta{color:#444;margin:.2em 0 .8em}
input#filter{font-size:1em;padding:.25em .5em;width:22em;margin-bottom:.6em}
table{border-collapse:collapse;font-size:.85em}
th,td{border:1px solid #ccc;padding:3px 6px;vertical-align:middle}
th{background:#f0f0f0;cursor:pointer;user-select:none;position:sticky;top:0;white-space:nowrap}
th.asc::after{content:" \\25B2"}th.desc::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.name{min-width:9em;max-width:16em;overflow-wrap:anywhere}
tr.error td{background:#fde8e1}tr.skipped td{background:#f4f4f4;color:#666}
td.msg{min-width:14em;max-width:24em;font-size:.9em;color:#7a4a00}
td.msg span.err{color:#a01800;font-weight:600}
td.msg details summary{cursor:pointer}td.msg ul{margin:.2em 0 0 1em;padding:0}
tr.skipped td.msg{color:#666}
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


def _number(v) -> float | None:
    if _is_missing(v) or isinstance(v, (bool, str)):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _decimals(text: str) -> int:
    return len(text.split(".", 1)[1]) if "." in text else 0


def format_number(col: str, rec) -> str | None:
    """The text of the number in column ``col`` of a summary row (None when it is not a number).

    ``value ± error`` rounded to the error's precision where the row holds an
    error (``d_err_angstrom`` for ``d_angstrom`` ...); a spread beside such a
    value with its decimals (``std_nm`` beside ``mean_nm``); counts as
    integers; everything else to 4 significant digits.

    Examples
    --------
    >>> row = {"mean_nm": 4.0012, "mean_err_nm": 0.0512, "std_nm": 0.30634, "rsd_percent": 7.6561}
    >>> [format_number(c, row) for c in ("mean_nm", "std_nm", "rsd_percent")]
    ['4.00 ± 0.05', '0.31', '7.7']
    """
    v = _number(rec.get(col))
    if v is None:
        return None
    if col in _WITH_ERROR:
        return format_uncertain(v, _number(rec.get(_WITH_ERROR[col])))
    if col in _SAME_DECIMALS_AS:
        ref = _SAME_DECIMALS_AS[col]
        ref_text = format_number(ref, rec)
        if ref_text is not None and "±" in ref_text:
            return f"{v:.{_decimals(ref_text.split('±')[0].strip())}f}"
    if col in _DECIMALS:
        return f"{v:.{_DECIMALS[col]}f}"
    if col.startswith("n_") and v.is_integer() and abs(v) < 1e15:
        return f"{int(v)}"
    return format_uncertain(v)


def _without_file_prefix(text: str, rec) -> str:
    """``'a.emd[HAADF]: 3 spots dropped'`` -> ``'3 spots dropped'`` (the row names the file already)."""
    file = str(rec.get("file") or "")
    for name in (file, PurePosixPath(file).name):
        if name and text.startswith(name):
            rest = text[len(name) :]
            if rest.startswith("["):
                rest = rest.split("]", 1)[1] if "]" in rest else rest
            if rest.startswith(": "):
                return rest[2:]
    return text


def _messages(rec) -> tuple[str, list[str]]:
    """The one-line error of the row and its warnings (file-name prefixes removed)."""
    err = " ".join(str(rec.get("error") or "").split()) if isinstance(rec.get("error"), str) else ""
    warns = rec.get("warnings")
    items = [_without_file_prefix(w.strip(), rec) for w in warns.split(" | ")] if isinstance(warns, str) else []
    return _without_file_prefix(err, rec), [w for w in items if w]


#: warnings longer than this are cut in the table (the full text unfolds on click)
_SHORT_CHARS = 90


def _message_cell(rec) -> str:
    err, warns = _messages(rec)
    sort = html.escape(" | ".join([err] + warns if err else warns))
    cls = "err" if rec.get("status") == "error" else "note"
    parts = [f'<span class="{cls}">{html.escape(err)}</span>'] if err else []
    if warns:
        first = warns[0] if len(warns[0]) <= _SHORT_CHARS else warns[0][: _SHORT_CHARS - 1].rstrip() + "…"
        label = first if len(warns) == 1 else f"{len(warns)} warnings: {first}"
        if len(warns) == 1 and first == warns[0]:
            parts.append(f'<span class="warn">{html.escape(first)}</span>')
        else:
            full = "".join(f"<li>{html.escape(w)}</li>" for w in warns)
            parts.append(f'<details class="warn"><summary>{html.escape(label)}</summary><ul>{full}</ul></details>')
    return f'<td class="msg" data-sort="{sort}">{"".join(parts)}</td>'


def _cell(col: str, rec) -> str:
    if col == "message":
        return _message_cell(rec)
    v = rec.get(col)
    if _is_missing(v):
        return '<td data-sort=""></td>'
    if isinstance(v, bool):
        return f"<td>{'yes' if v else 'no'}</td>"
    text = format_number(col, rec)
    if text is not None:
        return f'<td class="num" data-sort="{float(v)!r}">{html.escape(text)}</td>'
    if col == "file" and isinstance(rec.get("json"), str) and rec.get("json"):
        return (
            f'<td class="name" data-sort="{html.escape(str(v))}"><a href="{_href(rec["json"])}">'
            f"{html.escape(str(v))}</a></td>"
        )
    if col in ("file", "signal"):
        return f'<td class="name">{html.escape(str(v))}</td>'
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
    cols = [c for c in PAGE_COLUMNS if c in summary.columns or c == "message"]
    n_files = summary["file"].nunique() if "file" in summary else 0
    status = summary["status"] if "status" in summary else pd.Series(dtype=str)
    failed = summary.loc[status == "error", "file"].nunique() if len(summary) else 0
    skipped = summary.loc[status == "skipped", "file"].nunique() if len(summary) else 0
    head = "".join(f"<th>{html.escape(_HEADERS.get(c, c))}</th>" for c in ["figure"] + cols)
    body = []
    for rec in summary.to_dict(orient="records"):
        st = str(rec.get("status") or "")
        cls = f' class="{html.escape(st)}"' if st in ("error", "skipped") else ""
        fig = rec.get("figure")
        if isinstance(fig, str) and fig:
            thumb = (
                f'<td><a href="{_href(fig)}"><img class="thumb" loading="lazy" src="{_href(fig)}" '
                f'alt="{html.escape(fig)}"></a></td>'
            )
        else:
            thumb = '<td data-sort=""></td>'
        cells = [thumb] + [_cell(c, rec) for c in cols]
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    links = " · ".join(f'<a href="{n}">{n}</a>' for n in ("summary.csv", "spots.csv", "particles.csv", "errors.csv"))
    t = html.escape(title)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{t}</title>\n'
        f"<style>{_CSS}</style>\n</head>\n<body>\n<h1>{t}</h1>\n"
        f'<p class="meta">{n_files} files · {len(summary)} rows · {failed} failed · {skipped} skipped · {links}</p>\n'
        '<input id="filter" type="search" placeholder="filter rows…" aria-label="filter rows">\n'
        f'<table id="summary">\n<thead><tr>{head}</tr></thead>\n<tbody>\n'
        + "\n".join(body)
        + f"\n</tbody>\n</table>\n<script>{_JS}</script>\n</body>\n</html>\n"
    )


def write_index_html(path, summary: pd.DataFrame, *, title: str = "latticefit batch") -> Path:
    """Write :func:`index_html` to ``path`` atomically; returns the path."""
    path = Path(path)
    atomic_write_text(path, index_html(summary, title=title))
    return path
