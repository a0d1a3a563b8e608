"""`accelkit scalesim` against scalesim 3.0.0 on the small cases of bench/sim_scalesim_suite.py: SCALE-Sim's own
topologies (test.csv's Inception layer, NCF, the MNK test GEMM) on its shipped configs, reports byte for byte.

The goldens in tests/sim/golden_suite/ were recorded by `bench/sim_scalesim_suite.py --record` (scalesim's three
reports, its trace hashes and wall seconds); the large cases run only in the benchmark.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from accelkit.sim.scalesim.cli import main

GOLDEN = Path(__file__).resolve().parent / "golden_suite"
REPORTS = ("COMPUTE_REPORT", "BANDWIDTH_REPORT", "DETAILED_ACCESS_REPORT")
# Each under a second here; the AlexNet and USER-mode CNN cases take seconds and stay in the benchmark.
SMALL = (
    "inception_google_is_calc",
    "inception_scale_ws_user",
    "ncf_google_os_calc",
    "mnk_scale_ws_user",
    "mnk_google_is_user",
    "mnk_eyeriss_os_calc",
    "vit_s_google_ws_calc",
)


@pytest.mark.parametrize("name", SMALL)
def test_suite_case_matches_scalesim(name, tmp_path):
    folder = GOLDEN / name
    gemm = (folder / "topology.csv").read_text().startswith("Layer, M, N, K")
    argv = ["-c", str(folder / "scale.cfg"), "-t", str(folder / "topology.csv"), "-l", str(folder / "layout.csv")]
    assert main([*argv, "-p", str(tmp_path), "-i", "gemm" if gemm else "conv"]) == 0
    for report in REPORTS:
        ours = (tmp_path / name / f"{report}.csv").read_text()
        assert ours == (folder / f"{report}.csv").read_text(), f"{name} {report} differs from scalesim's"
