"""The software side: PyTorch model, checkpoints, exporter, model compiler, artifact flow, host Device API."""
from pathlib import Path

#: Where the trained `demo` checkpoint lives (sw/train_demo.py writes it; its tokenizer and held-out text too).
DEMO_DIR = Path(__file__).resolve().parent / "demo"
