"""RTL simulation through cocotb: runner.py builds Verilog for Verilator or Icarus and runs a cocotb
bench on it; tb_accel.py (the accelerator), tb_dram.py (the DDR4 memory system) and tb_adapters.py
(the Avalon-MM / AXI4 adapters) are the benches; dram.py and runs.py are ready-made runs."""
