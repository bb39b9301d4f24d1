"""Scheduling: the per-account request budget, the poll plan, and the runner that wires the chain.

``Runner`` lives in ``exporter.scheduler.runner`` and is not re-exported here: it imports the
whole chain (config, parse, diff, state file), and the budget and plan must stay importable
without it.
"""

from exporter.scheduler.budget import SlidingWindowBudget
from exporter.scheduler.plan import Schedule, plan_account

__all__ = ["Schedule", "SlidingWindowBudget", "plan_account"]
