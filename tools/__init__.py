"""Developer tools that maintain the documentation (not imported by the runtime packages)."""
