# MatMul-free LM accelerator: top-level entry points.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?=
# test workers (pytest-xdist): the suite on both cores of the CI machine; JOBS=0 runs it in one process
JOBS ?= 2

.PHONY: setup test test-all lint sim bench bench-golden bench-dram export demo-fidelity bitstream verilog units clean help

help:
	@echo "make setup          create $(VENV) and install everything from PyPI"
	@echo "make test [JOBS=2]  the default regression (slow tests excluded), on JOBS test workers"
	@echo "make test-all       every test, including those marked slow"
	@echo "make sim MODEL=370m [TOKENS=4] [PROMPT=text] [CHECKPOINT=dir] [CORES=1] [CHANNELS=1] [PACKING=1.6bit] [CONFIG=name] [TRACE=1]"
	@echo "                    the model on the full-system simulator, every token checked against the golden model"
	@echo "make export MODEL=370m [PACKING=1.6bit] [CHECKPOINT=dir]   write build/MODEL.img"
	@echo "make bench          370m on the full-system simulator: cycles/token, tokens/s, roofline, cores, channels"
	@echo "make bench-golden   golden-model decode speed on the random-init 370m (JSON + table)"
	@echo "make demo-fidelity  golden vs float model on the demo checkpoint (JSON + table)"
	@echo "make bench-dram     DDR4 controller efficiency under Verilator beside the references (JSON + table)"
	@echo "make bitstream BOARD=ulx3s_85f|ecpix5_85|orangecrab_85f|butterstick|icebreaker [CONFIG=ecp5] [MODEL=tiny] [CLOCK_MHZ=f] [VECTOR_LANES=n]"
	@echo "                    bitstream + manifest + utilisation/Fmax report under build/bitstreams/BOARD (yowasp)"
	@echo "make units          each core unit synthesized alone for ECP5: LUTs, DSPs, block RAMs, estimated worst path vs budget"
	@echo "make verilog TARGET=d5005|mig [CONFIG=ddr4] [MODEL=370m]"
	@echo "                    Verilog with the Avalon-MM (Intel EMIF) or AXI4 (MIG) adapter under build/verilog/TARGET"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip

setup: $(PY)
	$(PY) -m pip install -e '.[all]'
	@$(PY) -c "import torch, numpy, numba; print('setup ok: torch', torch.__version__, 'numpy', numpy.__version__, 'numba', numba.__version__)"

test: lint
	$(PY) -m pytest -n $(JOBS) $(PYTEST_ARGS)

test-all: lint
	$(PY) -m pytest -n $(JOBS) -m '' $(PYTEST_ARGS)

# ruff, then the layering: import contracts of pyproject.toml [tool.importlinter] (a wrong-way import fails)
lint:
	$(PY) -m ruff check spec golden assembler sw hw sim bitstreams tests
	$(VENV)/bin/lint-imports --no-logo --no-cache

MODEL ?= 370m
PACKING ?= 1.6bit
CHECKPOINT ?=
export:
	$(PY) -m sw.export --model $(MODEL) --packing $(PACKING) $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT)) -o build/$(MODEL).img

TOKENS ?= 4
PROMPT ?=
CORES ?= 1
CHANNELS ?= 1
TRACE ?=
BACKEND ?= verilator
CONFIG ?=
sim:
	$(PY) -m sim --model $(MODEL) --tokens $(TOKENS) --cores $(CORES) --channels $(CHANNELS) --packing $(PACKING) \
	  --backend $(BACKEND) $(if $(CONFIG),--config $(CONFIG)) $(if $(PROMPT),--prompt "$(PROMPT)") $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT)) \
	  $(if $(TRACE),--trace)

bench:
	$(PY) -m sim.benches.system --model $(MODEL) -o build/bench/sim.json

bench-golden:
	$(PY) -m sim.benches.golden_speed --model 370m -o build/bench/golden_370m.json

bench-dram:
	$(PY) -m sim.benches.dram --json build/bench/dram.json

demo-fidelity:
	$(PY) -m sim.benches.fidelity --model demo -o build/fidelity/demo.json

BOARD ?=
bitstream:
	$(PY) -m bitstreams --board "$(BOARD)" $(if $(CONFIG),--config $(CONFIG)) $(if $(CLOCK_MHZ),--clock-mhz $(CLOCK_MHZ)) \
	  $(if $(VECTOR_LANES),--vector-lanes $(VECTOR_LANES)) $(if $(filter command line,$(origin MODEL)),--model $(MODEL))

TARGET ?=
verilog:
	$(PY) -m bitstreams.verilog --target "$(TARGET)" $(if $(CONFIG),--config $(CONFIG)) \
	  $(if $(filter command line,$(origin MODEL)),--model $(MODEL))

units:
	$(PY) -m bitstreams.units -o build/units/report.json

clean:
	rm -rf build
