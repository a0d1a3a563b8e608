"""`simulate`: the one-call Python entry point for networks, layer lists and single layers."""

from __future__ import annotations

import dataclasses
import warnings
from collections import Counter
from collections.abc import Callable, Sequence

from accelkit.sim.engine import MODES, LayerStats, simulate_layer
from accelkit.sim.hardware import PRESETS, Hardware, resolve_hardware

__all__ = ["PRESETS", "DuplicateLayerNameWarning", "resolve_hardware", "resolve_workload", "simulate"]
from accelkit.sim.networks import get_network
from accelkit.sim.report import LayerResult, Report
from accelkit.sim.workloads import Conv, Gemm

Progress = Callable[[int, int, str], None]


def resolve_workload(
    workload: str | Gemm | Conv | Sequence[Gemm | Conv], *, batch: int = 1, seq_len: int | None = None
) -> list[Gemm | Conv]:
    """The layer list of a network name, a single layer or a sequence of layers."""
    if isinstance(workload, str):
        return get_network(workload, batch=batch, seq_len=seq_len)
    if batch != 1 or seq_len is not None:
        raise ValueError("batch and seq_len apply to a network name; set them on the Gemm/Conv layers instead")
    if isinstance(workload, (Gemm, Conv)):
        return [workload]
    if isinstance(workload, Sequence):
        layers = list(workload)
        for index, layer in enumerate(layers):
            if not isinstance(layer, (Gemm, Conv)):
                raise TypeError(f"workload[{index}] must be a Gemm or Conv, got {type(layer).__name__}")
        if not layers:
            raise ValueError("workload is an empty list")
        return layers
    raise TypeError(f"workload must be a network name, a Gemm/Conv or a list of them, got {type(workload).__name__}")


FUNCTIONAL_LEVELS = ("fold", "cycle")


def _functional_level(functional: bool | str) -> str | None:
    """None (off), "fold" (True) or "cycle"."""
    if isinstance(functional, bool):
        return "fold" if functional else None
    if functional in FUNCTIONAL_LEVELS:
        return functional
    raise ValueError(f"functional must be a bool or one of {FUNCTIONAL_LEVELS}, got {functional!r}")


def _check_options(mode: str, accumulate_on_chip: bool, progress: Progress | None) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not isinstance(accumulate_on_chip, bool):
        raise TypeError(f"accumulate_on_chip must be a bool, got {type(accumulate_on_chip).__name__}")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a callable(done, total, layer_name), got {type(progress).__name__}")


def simulate(
    workload: str | Gemm | Conv | Sequence[Gemm | Conv],
    hardware: Hardware | str,
    *,
    mode: str = "native",
    accumulate_on_chip: bool = False,
    functional: bool | str = False,
    progress: Progress | None = None,
    batch: int = 1,
    seq_len: int | None = None,
) -> Report:
    """Simulate every layer of `workload` on `hardware` and return a Report in layer order.

    `workload` is a network name (see `accelkit.sim.networks.NETWORKS`; `batch` and `seq_len` shape it), one
    Gemm/Conv or a list of them. `hardware` is a Hardware or a preset name. `functional=True` (or "fold") also
    pushes random int8 data through every layer's fold schedule and raises `ScheduleError` unless the result
    equals NumPy's bit for bit; it does every MAC in NumPy, about 3.5 s for ResNet-50 on the Eyeriss preset.
    `functional="cycle"` runs each fold on the register-level emulator and also checks its cycle count, one NumPy
    step per simulated cycle, so it is for small layers. `progress(done, total, name)` is called after each
    layer.

    Layers are independent (each starts with empty SRAMs, as in SCALE-Sim), so identical shapes, such as the
    144 attention heads of BERT-base, are simulated once and the result is reused under each name.
    """
    hw = resolve_hardware(hardware)
    layers = resolve_workload(workload, batch=batch, seq_len=seq_len)
    _check_options(mode, accumulate_on_chip, progress)
    _warn_duplicate_names(layers)
    level = _functional_level(functional)
    if mode == "compat":
        from accelkit.sim.scalesim.engine import check_compat_workload

        check_compat_workload(layers, hw)
    seen: dict[Gemm | Conv, tuple[LayerStats, int | None]] = {}
    results = []
    for done, layer in enumerate(layers, start=1):
        shape = dataclasses.replace(layer, name="")
        if shape not in seen:
            stats = simulate_layer(layer, hw, mode=mode, accumulate_on_chip=accumulate_on_chip)
            seen[shape] = (stats, _verify(layer, hw, mode, level) if level else None)
        stats, folds = seen[shape]
        results.append(LayerResult(layer.name, layer, dataclasses.replace(stats, name=layer.name), folds))
        if progress is not None:
            progress(done, len(layers), layer.name)
    return Report(hw, mode, accumulate_on_chip, tuple(results))


class DuplicateLayerNameWarning(UserWarning):
    """Two layers of one workload share a name: rows keyed by name (`to_pandas`'s index, CSV joins) collide."""


def _warn_duplicate_names(layers: list[Gemm | Conv]) -> None:
    counts = Counter(layer.name for layer in layers)
    repeated = [f"{name!r} x{count}" for name, count in counts.items() if count > 1]
    if repeated:
        shown = ", ".join(repeated[:5]) + (f" and {len(repeated) - 5} more" if len(repeated) > 5 else "")
        warnings.warn(
            f"workload has duplicate layer names ({shown}); every layer is simulated, but results keyed by name "
            "(Report.to_pandas() index, CSV joins) will collide",
            DuplicateLayerNameWarning,
            stacklevel=3,
        )


def _verify(layer: Gemm | Conv, hw: Hardware, mode: str, level: str) -> int:
    from accelkit.sim.functional import verify_layer

    return verify_layer(layer, hw, mode=mode, cycle_level=level == "cycle")
