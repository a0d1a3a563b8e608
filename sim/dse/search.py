"""Which designs a sweep evaluates: every feasible point of the grid, or the trials of optuna's NSGA-II sampler.

NSGA-II (Deb et al., IEEE TEVC 2002) comes from optuna (`optuna.samplers.NSGAIISampler`), not from code here.
Each parameter is a categorical choice among its listed values. Designs that break a constraint are never
simulated: optuna is told the trial failed, so it never breeds from them.
"""

from __future__ import annotations

from accelkit._optional import require
from accelkit.sim.dse.space import OBJECTIVES, hardware_for

MAX_ASKS_PER_TRIAL = 20


def designs_for(spec, evaluator) -> list[dict]:
    if spec.search.method == "nsga2":
        return _nsga2(spec, evaluator)
    return _grid(spec, evaluator)


def _grid(spec, evaluator) -> list[dict]:
    names = [p.name for p in spec.parameters]
    picked = []
    for design, values in enumerate(spec.grid()):
        hw = hardware_for(spec.base, zip(names, values, strict=True))
        if spec.constraints.violation(hw, spec.area) is None:
            picked.append((design, values, hw))
    evaluator.progress.update(spec.grid_size - len(picked))
    evaluator.run([hw for _, _, hw in picked])
    return [evaluator.record(design, values, hw) for design, values, hw in picked]


def design_index(spec, values: tuple) -> int:
    """The design's position in the grid (row-major over the spec's parameters), the same id a grid sweep gives."""
    index = 0
    for parameter, value in zip(spec.parameters, values, strict=True):
        index = index * len(parameter.values) + parameter.values.index(value)
    return index


def _nsga2(spec, evaluator) -> list[dict]:
    """Ask optuna for designs a generation at a time until `trials` distinct designs are evaluated. A design
    asked for again is told its stored result at no cost, so `trials` is the simulation budget; asking stops
    after MAX_ASKS_PER_TRIAL x trials in all (a space nearly exhausted yields only repeats)."""
    optuna = require("optuna", feature="the nsga2 search of accelkit dse")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.NSGAIISampler(population_size=spec.search.population, seed=spec.search.seed)
    directions = ["minimize" if OBJECTIVES[name][1] > 0 else "maximize" for name in spec.objectives]
    study = optuna.create_study(directions=directions, sampler=sampler)
    records: dict[int, dict] = {}
    asked = 0
    while len(records) < spec.search.trials and asked < MAX_ASKS_PER_TRIAL * spec.search.trials:
        batch = [study.ask() for _ in range(spec.search.population)]
        asked += len(batch)
        chosen = [_suggest(spec, trial) for trial in batch]
        fresh = {}
        for _, design, hw in chosen:
            if hw is not None and design not in records and len(records) + len(fresh) < spec.search.trials:
                fresh[design] = hw
        evaluator.run(list(fresh.values()))
        for trial, design, hw in chosen:
            if hw is not None and (design in records or design in fresh):
                values = tuple(trial.params[p.name] for p in spec.parameters)
                record = records.setdefault(design, evaluator.record(design, values, hw))
                study.tell(trial, [record[OBJECTIVES[name][0]] for name in spec.objectives])
            else:
                # Infeasible, or past the budget: a failed trial, which NSGA-II never selects as a parent.
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return list(records.values())


def _suggest(spec, trial):
    """(trial, design id, Hardware or None when a constraint rules it out)."""
    values = tuple(trial.suggest_categorical(p.name, list(p.values)) for p in spec.parameters)
    hw = hardware_for(spec.base, zip([p.name for p in spec.parameters], values, strict=True))
    feasible = spec.constraints.violation(hw, spec.area) is None
    return trial, design_index(spec, values), hw if feasible else None
