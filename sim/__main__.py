"""python -m sim: the full-system simulation driver behind `make sim` (sim/driver.py)."""
import sys

from sim.driver import main

sys.exit(main())
