"""Golden-file tests of the JSON contracts (lattice, region comparison, particles, report).

The golden files in ``tests/data/golden/`` are written by ``scripts/make_golden.py`` from small seeded
``latticefit.synth`` inputs. Here the same results are recomputed and compared: every key, list length
and value type must be the same (a renamed, added or removed key fails until the golden file is rewritten
on purpose and the change is in ``CHANGELOG.md``); numbers agree to 0.1 % (they are checked for accuracy
elsewhere: here only against an unintended change of behaviour).
"""

from __future__ import annotations

import importlib.util
import json
import math
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "golden"
#: keys whose values are wall times: compared by type only
TIMING_KEYS = {"indexing_time_s"}


def _make_golden():
    spec = importlib.util.spec_from_file_location("make_golden", ROOT / "scripts" / "make_golden.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


MAKE = _make_golden()


def differences(got, want, path="$") -> list[str]:
    """Where ``got`` departs from ``want``: keys, lengths, types, strings; numbers beyond 0.1 %."""
    if type(got) is not type(want):
        return [f"{path}: type {type(got).__name__} != golden {type(want).__name__}"]
    if isinstance(want, dict):
        out = [f"{path}: key {k!r} missing" for k in sorted(set(want) - set(got))]
        out += [f"{path}: key {k!r} not in the golden file" for k in sorted(set(got) - set(want))]
        for k in sorted(set(want) & set(got)):
            if k not in TIMING_KEYS:
                out += differences(got[k], want[k], f"{path}.{k}")
        return out
    if isinstance(want, list):
        if len(got) != len(want):
            return [f"{path}: length {len(got)} != golden {len(want)}"]
        return [d for i, (a, b) in enumerate(zip(got, want)) for d in differences(a, b, f"{path}[{i}]")]
    if isinstance(want, float):
        ok = math.isclose(got, want, rel_tol=1e-3, abs_tol=1e-12)
        return [] if ok else [f"{path}: {got!r} != golden {want!r}"]
    return [] if got == want else [f"{path}: {got!r} != golden {want!r}"]


def test_differences_sees_renames_types_and_numbers():
    want = {"schema_version": 1, "spots": [{"n1": 1, "d_angstrom": 4.195}]}
    assert differences(want, want) == []
    assert differences({"schema_version": 1, "spots": [{"h": 1, "d_angstrom": 4.195}]}, want) == [
        "$.spots[0]: key 'n1' missing",
        "$.spots[0]: key 'h' not in the golden file",
    ]
    assert differences({"schema_version": 1, "spots": [{"n1": "1", "d_angstrom": 4.195}]}, want)
    assert differences({"schema_version": 1, "spots": [{"n1": 1, "d_angstrom": 4.21}]}, want)
    assert differences({"schema_version": 1, "spots": []}, want) == ["$.spots: length 0 != golden 1"]


@pytest.mark.parametrize("name", sorted(MAKE.CONTRACTS))
def test_json_contract_matches_golden_file(name):
    want = json.loads((GOLDEN / f"{name}.json").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = MAKE.jsonable(MAKE.CONTRACTS[name]())
    assert isinstance(got.get("schema_version"), int), f"{name}: every JSON contract carries a schema_version"
    diff = differences(got, want)
    assert not diff, f"{name} JSON departs from tests/data/golden/{name}.json:\n" + "\n".join(diff[:20])
