"""Topic names (DESIGN.md §4). Values are JSON; keys are account ids."""

EVENTS = "analytics.events"
EVENTS_DLQ = "analytics.events.dlq"
FACTS = "onboarding.facts"
TRANSITIONS = "onboarding.transitions"
ESCALATIONS = "onboarding.escalations"
