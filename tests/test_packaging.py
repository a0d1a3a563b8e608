"""A user's install, end to end: build the sdist, build the wheel from that sdist, install the wheel into fresh
virtual environments and run the commands from outside the repository.

Two installs: `accelkit[kernels]` (torch pinned to the version this suite runs, so pip takes the wheel already on
disk instead of downloading a CUDA build) and the bare wheel, the simulator-only install of an architect.
"""

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What the sdist must carry for a user to build and test from it: every file of these trees.
SDIST_TREES = ("csrc", "kernels", "sim", "accelkit", "tests", "bench")
SDIST_FILES = ("LICENSE", "README.md", "Makefile", "pyproject.toml", "setup.py", "MANIFEST.in")
SKIPPED_PARTS = {"__pycache__", ".hypothesis", ".pytest_cache"}

pytestmark = pytest.mark.slow


def _run(cmd: list[str], *, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run as a user would: no PYTHONPATH into the repository, no variables the test harness set."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "TRITON_INTERPRET")}
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, (
        f"{' '.join(map(str, cmd))} exited {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    )
    return res


def _source_files() -> set[str]:
    found = {name for name in SDIST_FILES}
    for tree in SDIST_TREES:
        for path in (ROOT / tree).rglob("*"):
            rel = path.relative_to(ROOT)
            if path.is_file() and not SKIPPED_PARTS & set(rel.parts) and path.suffix not in (".so", ".pyc"):
                found.add(rel.as_posix())
    return found


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict[str, Path]:
    """sdist and wheel; `python -m build` builds the wheel from the unpacked sdist, so a file the sdist leaves out
    breaks the wheel build here as it would for a user."""
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)], cwd=out)
    (sdist,) = out.glob("accelkit-*.tar.gz")
    (wheel,) = out.glob("accelkit-*.whl")
    return {"sdist": sdist, "wheel": wheel}


def _venv(tmp: Path, name: str, *requirements: str) -> Path:
    env_dir = tmp / name
    _run([sys.executable, "-m", "venv", str(env_dir)], cwd=tmp)
    _run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", *requirements], cwd=tmp)
    return env_dir / "bin"


@pytest.fixture(scope="module")
def kernels_env(dist, tmp_path_factory) -> Path:
    import torch

    tmp = tmp_path_factory.mktemp("kernels-env")
    return _venv(tmp, "venv", f"{dist['wheel']}[kernels]", f"torch=={torch.__version__}")


@pytest.fixture(scope="module")
def sim_env(dist, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("sim-env")
    return _venv(tmp, "venv", str(dist["wheel"]))


@pytest.fixture
def outside(tmp_path) -> Path:
    """A working directory with no accelkit/ folder in it, so only the installed package can be imported."""
    return tmp_path


def test_sdist_holds_every_source_test_and_readme(dist):
    with tarfile.open(dist["sdist"]) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    missing = sorted(_source_files() - names)
    assert not missing, f"the sdist leaves out {missing[:20]}"


def test_wheel_ships_the_kernel_sources_and_readmes(dist):
    with zipfile.ZipFile(dist["wheel"]) as whl:
        names = set(whl.namelist())
    sources = [*(ROOT / "csrc" / "cuda").glob("*.cu"), *(ROOT / "csrc" / "include" / "accelkit").glob("*.h")]
    expected = {f"accelkit/_csrc/{p.relative_to(ROOT / 'csrc').as_posix()}" for p in sources}
    readmes = (ROOT / "kernels").glob("*/README.md")
    expected |= {f"accelkit/kernels/{p.relative_to(ROOT / 'kernels').as_posix()}" for p in readmes}
    expected |= {"accelkit/sim/README.md"}
    assert expected <= names, f"the wheel leaves out {sorted(expected - names)}"
    assert any(n.endswith("licenses/LICENSE") for n in names)


def test_installed_package_is_the_wheel(kernels_env, outside):
    code = "import accelkit, accelkit._sources as s; print(accelkit.__file__); print(s.csrc_dir())"
    res = _run([str(kernels_env / "python"), "-c", code], cwd=outside)
    module, csrc = res.stdout.split()
    venv = kernels_env.parent
    assert Path(module).is_relative_to(venv) and Path(csrc).is_relative_to(venv), res.stdout


def test_demo_from_a_wheel(kernels_env, outside):
    res = _run([str(kernels_env / "accelkit"), "demo", "--size", "128"], cwd=outside)
    # The demo exits non-zero when any op misses its oracle, so rc 0 (checked by _run) means every row passed.
    assert "binary_matmul fwd" in res.stdout and "== Simulator" in res.stdout


def test_sim_resnet50_from_a_wheel(kernels_env, outside):
    res = _run([str(kernels_env / "accelkit"), "sim", "--network", "resnet50", "--quiet"], cwd=outside)
    assert res.stdout.startswith("54 layers"), res.stdout


def test_gpu_report_from_a_wheel_has_the_cuda_rows(kernels_env, outside):
    # --ci-subset: the Triton specs test_gpu_build.py compiles (and has left in Triton's cache); the full list (180
    # delta_rule specs alone) would add minutes to CI.
    res = _run([str(kernels_env / "accelkit"), "gpu-report", "--json", "--ci-subset"], cwd=outside)
    rows = json.loads(res.stdout)
    cuda = [r for r in rows if r["source"] == "cuda"]
    triton = [r for r in rows if r["source"] == "triton"]
    kernels = {r["kernel"].split(":")[0] for r in cuda}
    assert kernels == {p.name for p in (ROOT / "csrc" / "cuda").glob("*.cu")}, kernels
    assert triton and all(r["status"] == "ok" for r in triton), triton
    if shutil.which("nvcc") or os.environ.get("NVCC"):
        assert all(r["status"] == "ok" for r in cuda), cuda


def test_simulator_only_install_has_no_torch_and_runs(sim_env, outside):
    res = _run([str(sim_env / "python"), "-m", "pip", "list", "--format=json"], cwd=outside)
    installed = {p["name"].lower() for p in json.loads(res.stdout)}
    assert not installed & {"torch", "triton", "pandas"}, installed
    res = _run([str(sim_env / "accelkit"), "sim", "--network", "resnet50"], cwd=outside)
    assert "54 layers" in res.stdout
    res = _run([str(sim_env / "accelkit"), "demo"], cwd=outside)
    assert "pip install 'accelkit[kernels]'" in res.stdout and "== Simulator" in res.stdout


@pytest.mark.parametrize(
    ("code", "extra"),
    [
        ("import accelkit.ops", "kernels"),
        ("import accelkit; accelkit.ops", "kernels"),
        ("from accelkit.sim import simulate; simulate('resnet50', 'tpu_v1').to_pandas()", "pandas"),
    ],
)
def test_simulator_only_install_names_the_missing_extra(sim_env, outside, code, extra):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([str(sim_env / "python"), "-c", code], cwd=outside, env=env, capture_output=True, text=True)
    assert res.returncode != 0
    last = res.stderr.strip().splitlines()[-1]
    assert f"pip install 'accelkit[{extra}]'" in last, res.stderr[-2000:]
