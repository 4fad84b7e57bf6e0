"""python -m sim.fuzz: the fuzzer's CLI (sim/fuzz/cli.py)."""
import sys

from sim.fuzz.cli import main

sys.exit(main())
