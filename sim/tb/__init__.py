"""Testbench models shared by every harness (Amaranth simulation, cocotb, the tests and the benches):
stream drivers with pause generators (streams.py), the functional-unit harness (unit.py),
bus-functional models of the memory adapters (bfm.py) and the DRAM model's store, trace and checker
report (dram.py)."""
