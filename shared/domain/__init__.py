"""The pure domain core: plans, facts, rules and their evaluation. No clock, database or I/O."""
