"""SCALE-Sim 3.0.0 compatibility: its file formats (config, topology, reports), the compat engine that reproduces
its numbers (streams, memory, engine), its traces and the `accelkit scalesim` command line."""
