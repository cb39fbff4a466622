"""The teacher: mediator, planner and plan sources, skills. Numpy and text only, never torch.

:mod:`planners.teacher` holds the :class:`~planners.teacher.Teacher` interface and the one plan-following
teacher; :mod:`planners.factory` builds it from settings; task families live in ``minigrid/`` and
``habitat/``; the LLM plumbing in ``llm/``.
"""
