"""firstvalue's shared package: the pure domain core, settings, storage and the bus."""
