"""accelkit.roofline: roofline charts of accelkit ops, benchmark records and simulated layers (`accelkit roofline`).

`devices` holds the roofs (datasheet GPUs, this machine measured and cached, simulator presets), `costs` the work
and minimum DRAM bytes of every public op, `points` the three kinds of point and `chart` the PNG and tables.
"""
