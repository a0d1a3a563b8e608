"""Run one benchmark side by side with its peer: `python bench/run.py NAME [ARGS...]`.

Each benchmark is bench/NAME.py with `run(argv: list[str]) -> dict`. It prints what it likes while it works;
this runner prints, as the last line, one JSON object with at least name, metric, ours, peer and ratio, and
appends a record of it (flops or ops, bytes, seconds, device) to bench/out/records.jsonl.
"""

import importlib.util
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REQUIRED = ("name", "metric", "ours", "peer", "ratio")
RECORDS = HERE / "out" / "records.jsonl"


def available() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.py") if p.stem not in ("run",) and not p.stem.startswith("_"))


def load(name: str):
    path = HERE / f"{name}.py"
    if not path.is_file():
        raise SystemExit(f"unknown benchmark {name!r}; available: {', '.join(available())}")
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(HERE))
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: python bench/run.py NAME [ARGS...]\nbenchmarks: {', '.join(available())}")
        return 0
    result = load(argv[0]).run(argv[1:])
    missing = [key for key in REQUIRED if key not in result]
    if missing:
        raise SystemExit(f"benchmark {argv[0]} returned no {', '.join(missing)}")
    from accelkit.roofline.records import append_record

    # Every run adds its work, bytes and seconds to the measured points of `accelkit roofline --records`.
    append_record(result, argv, RECORDS)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
