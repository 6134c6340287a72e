"""Zero-downtime migration of the memory to a new embedding space: engine, command line and admin cog."""
