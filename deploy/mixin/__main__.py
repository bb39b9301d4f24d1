"""``python -m deploy.mixin``: render (or check) every rule and dashboard file."""

from __future__ import annotations

import sys

from .render import main

__all__: list[str] = []

sys.exit(main())
