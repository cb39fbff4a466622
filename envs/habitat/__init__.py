"""Habitat rearrangement with option-level skills (navigate, pick, place, open, close).

Nothing in this package imports habitat at module import time: :mod:`envs.habitat.pddl`,
:mod:`envs.habitat.layout` and :mod:`envs.habitat.settings` are plain Python, and
:mod:`envs.habitat.backend` imports habitat-lab only when a real simulator is asked for. That keeps every
other task, and the tests, working on machines without habitat-sim (see docs/habitat.md).
"""
