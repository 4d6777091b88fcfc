"""Facts → onboarding state, shared by every writer: the milestones service (consumer,
timers), the API's write endpoints, replay and the embedded runner all project through
here, so there is one path from facts to the stored projection and its outbox."""
