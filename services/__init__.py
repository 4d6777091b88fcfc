"""The three services: ingest, milestones and the API. Each imports ``shared``, not each other."""
