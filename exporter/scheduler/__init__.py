"""Scheduling: the per-account request budget, the poll plan, and the runner that wires the chain."""

from exporter.scheduler.budget import SlidingWindowBudget
from exporter.scheduler.plan import Schedule, plan_account
from exporter.scheduler.runner import RetryPolicy, Runner

__all__ = ["RetryPolicy", "Runner", "Schedule", "SlidingWindowBudget", "plan_account"]
