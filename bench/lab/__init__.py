"""What the benches share: the workload, a scratch PostgreSQL database, bulk-loaded
onboardings, the servers' settings, the machine's facts.

A package rather than modules beside the benches: ``make bench`` runs every ``bench/*.py``.
"""
