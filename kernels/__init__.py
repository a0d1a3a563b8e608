"""accelkit.kernels: the ops' kernels, launchers and NumPy oracles. They need torch, which the `kernels` extra brings;
without it, importing this package (or accelkit.ops, accelkit.nn) fails with one line naming that extra."""

from accelkit._optional import require

require("torch", feature="accelkit.kernels (and accelkit.ops, accelkit.nn)")
