"""Fakes of external libraries for tests (each module says what it stands in for)."""
