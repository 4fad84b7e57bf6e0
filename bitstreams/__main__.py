"""python -m bitstreams --board NAME: see bitstreams/build.py."""
import sys

from bitstreams.build import main

sys.exit(main())
