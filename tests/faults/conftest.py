import sys
from pathlib import Path

# the training tests' helpers (trainhelpers.py) serve the fault tests too
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
