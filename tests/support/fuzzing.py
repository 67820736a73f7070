"""How long each fuzz test fuzzes: 20 s in `make test`, so that CI stays within its budget.

`FUZZ_SECONDS=600 .venv/bin/python -m pytest tests/test_fuzz_images.py` fuzzes
for longer by hand (hypothesis and the PDF mutator draw new cases each run).
"""

from __future__ import annotations

import os

FUZZ_SECONDS = float(os.environ.get("FUZZ_SECONDS", "20"))
