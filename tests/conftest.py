"""Shared test setup: the filter plugins import as plain modules (plugins/filter on sys.path), and the module they
share imports the collection way, through the checkout's collections/ directory (the link back to this repository)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "plugins" / "filter"))
sys.path.insert(0, str(ROOT / "collections"))
