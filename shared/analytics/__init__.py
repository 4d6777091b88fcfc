"""Product-analytics events as the vendors send them (Segment, Mixpanel) and the one event
model they are normalised into. Pure parsing and validation: the ingest consumer, the HTTP
ingest routes and backfill all read events through here."""
