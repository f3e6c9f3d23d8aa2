"""The intake's pure core: event validation, the branch registry's history and the per-event decision."""
