"""The simulators and the measurements, above the RTL (hw) and the software side (sw).

    driver.py, __main__.py   make sim: a model end to end, every token checked against the golden machine
    golden.py, machine.py    the golden model and the golden machine on the command line
    backends/                the Device API's simulator backends: Amaranth (amaranth.py) and the
                             full-system Verilator harness (verilator.py, harness/)
    rtl/                     cocotb builds and benches: the accelerator, the DDR4 system, the adapters
    fuzz/                    random valid programs and their golden expectations (differential fuzzing)
    tb/                      testbench models every harness shares: stream drivers, the unit harness,
                             bus-functional models, the DRAM store / trace / checker report
    benches/                 measurement command lines: make bench, golden speed, DDR4 efficiency,
                             fidelity, width sweep, TMATMUL and TMAC units
    tools.py                 where the simulator binaries are

Inside sim, benches sit over the driver, the driver over backends and rtl, those over fuzz, tb and
tools (the `sim-layers` import contract, docs/architecture.md).
"""
