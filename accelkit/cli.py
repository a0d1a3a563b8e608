"""The `accelkit` command. Each subcommand lives in its own module, imported only when it runs, so
`accelkit scalesim` never pays for torch or triton."""

import importlib
import sys

# name -> (module, one-line help); each module has main(argv: list[str]) -> int.
COMMANDS = {
    "demo": ("accelkit.demo", "check every backend and op against its oracle, then run small benchmarks"),
    "gpu-report": ("accelkit.gpu_report", "compile every kernel for sm_80/sm_90 and report registers, spills, smem"),
    "sim": ("accelkit.sim.cli", "simulate a network or topology on an accelerator preset or config"),
    "scalesim": ("accelkit.sim.scalesim.cli", "SCALE-Sim compatible runner: same flags, configs and reports"),
    "dse": ("accelkit.sim.dse.cli", "design-space exploration from a YAML spec: grid or NSGA-II, Pareto, report"),
    "roofline": ("accelkit.roofline.cli", "roofline chart of ops, benchmark records or simulated layers on a device"),
    "completion": ("accelkit.sim.completion", "print a bash or zsh completion script: accelkit completion bash|zsh"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items())
    return (
        "usage: accelkit [-h] [--version] COMMAND [ARGS...]\n\n"
        f"commands:\n{rows}\n\n"
        "options:\n  -h, --help  show this help and exit\n  --version   print the version and exit\n\n"
        "`accelkit COMMAND --help` describes a command.\n"
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(_usage())
        return 0
    if argv[0] == "--version":
        from accelkit import __version__

        print(f"accelkit {__version__}")
        return 0
    if argv[0] not in COMMANDS:
        sys.stderr.write(f"accelkit: unknown command {argv[0]!r}\n\n{_usage()}")
        return 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
