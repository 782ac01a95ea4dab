"""The install extras do what the README says: `[test]` brings everything the tests compare
against (JAX included, the CPU build), so CI runs every comparison instead of skipping it."""

import os
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXTRAS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def _names(extra: str) -> dict[str, str]:
    out = {}
    for req in EXTRAS[extra]:
        name = req.split(";")[0]
        for sep in ("==", ">=", "<", "["):
            name = name.split(sep)[0]
        out[name.strip()] = req
    return out


def test_the_test_and_bench_extras_pin_jax_and_its_cpu_jaxlib_together() -> None:
    for extra in ("test", "bench"):
        names = _names(extra)
        assert {"jax", "jaxlib"} <= set(names), extra
        assert names["jax"].split("==")[1] == names["jaxlib"].split("==")[1], names  # one release of both
        assert "cuda" not in names["jax"] and "tpu" not in names["jax"]


@pytest.mark.skipif(os.environ.get("CI") != "true", reason="CI installs the [test] extra (.ci/run)")
def test_under_ci_jax_is_installed_and_runs_on_the_cpu() -> None:
    import jax  # no importorskip: under CI a missing JAX is a failure, not 13 silent skips

    assert {d.platform for d in jax.devices()} == {"cpu"}
