"""Measurement command lines (benchmarks report figures; they are not tests): system.py (make bench),
golden_speed.py (make bench-golden), dram.py (make bench-dram), fidelity.py (make demo-fidelity),
width_sweep.py, matmul.py and tmac.py (the TMATMUL unit and the ternary MAC array)."""
