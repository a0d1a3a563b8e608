"""SCALE-Sim 3.0.0 file formats: config and topology readers, report writers."""
