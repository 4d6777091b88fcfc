"""Milestones: facts in, ``evaluate`` called, projections saved, transitions published."""
