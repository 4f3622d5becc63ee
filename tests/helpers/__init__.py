"""Test helpers shared by every test package (not fixtures: those are in conftest.py).

``db``: empty SQLite or Postgres databases; ``kafka``: reading a topic back;
``sandbox``: the sandbox platform served on a free port, and its fake clock.
"""

from pathlib import Path

#: The repository's root.
ROOT = Path(__file__).resolve().parents[2]
