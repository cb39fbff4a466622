"""Two sweeps' claims side by side: a confirmation on fresh seeds beside the exploratory sweep it repeats.

Each side's claims are computed from its own runs by :mod:`bench.claims`, with its own Holm families, exactly
as its own report prints them. A row *holds* on a side when its estimate points the claimed way and its
Holm-adjusted one-sided p is at most :data:`ALPHA`; the two sides *agree* when the row holds on both or on
neither. Rows are matched by table, task, claim and comparison; a row one side lacks (a method or task not run
there) is shown with a dash.
"""
from __future__ import annotations

from dataclasses import dataclass

from bench.claims import Claim

ALPHA = 0.05


@dataclass(frozen=True)
class ClaimTable:
    """The claims of one Holm family of a report: ``title`` (e.g. the paper's claims), its per-task rows and
    its rows over all tasks (Fisher's combination)."""

    title: str
    per_task: list
    over_tasks: list


def holds(claim: Claim | None) -> bool | None:
    """Whether ``claim`` supports what it tests (None: not tested)."""
    if claim is None:
        return None
    return claim.favours is not False and claim.p_holm is not None and claim.p_holm <= ALPHA


def agreement(here: Claim | None, there: Claim | None, there_name: str) -> str:
    """How the two sides' verdicts on one row compare."""
    if here is None or there is None:
        return "-"
    mine, theirs = holds(here), holds(there)
    if mine and theirs:
        text = "agree: holds on both"
    elif not mine and not theirs:
        text = "agree: holds on neither"
    elif mine:
        text = f"differ: holds here, not on {there_name}"
    else:
        text = f"differ: holds on {there_name}, not here"
    if here.task != there.task:  # rows over all tasks whose task sets differ
        text += " (tasks differ)"
    return text


def _key(claim: Claim, over_tasks: bool) -> tuple:
    measure = claim.measure.split(",")[0].split(" (")[0]
    return ("all tasks" if over_tasks else claim.task, claim.claim, claim.comparison, measure)


def _cell(claim: Claim | None, over_tasks: bool) -> tuple[str, str]:
    if claim is None:
        return "-", "-"
    measured = claim.estimate if over_tasks else f"{claim.estimate} {claim.interval}"
    return measured, f"{claim.p_value:.2g} ({claim.p_holm:.2g})"


def beside_markdown(here: list[ClaimTable], there: list[ClaimTable], here_name: str, there_name: str) -> str:
    """One table per claims table either side has: each row's estimate, p and Holm p on both sides, and
    whether they agree."""
    theirs = {table.title: table for table in there}
    titles = [t.title for t in here] + [t.title for t in there if t.title not in {m.title for m in here}]
    mine = {table.title: table for table in here}
    sections = []
    for title in titles:
        rows = []
        for over_tasks in (False, True):
            part = "over_tasks" if over_tasks else "per_task"
            a_side, b_side = ({_key(c, over_tasks): c for c in (getattr(side.get(title), part, None) or [])}
                              for side in (mine, theirs))
            # the other side's order (the complete sweep's, when this one is partial), then rows only here
            order = {key: i for i, key in enumerate(list(b_side) + [k for k in a_side if k not in b_side])}
            for key in sorted(order, key=lambda k: (k[0], order[k])):
                a, b = a_side.get(key), b_side.get(key)
                (a_measured, a_p), (b_measured, b_p) = _cell(a, over_tasks), _cell(b, over_tasks)
                rows.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {a_measured} | {a_p} | {b_measured} | "
                            f"{b_p} | {agreement(a, b, there_name)} |")
        if not rows:
            continue
        sections += [f"### {title}", "",
                     f"| task | claim | comparison | measure | {here_name}: measured | p (Holm) | {there_name}: "
                     "measured | p (Holm) | agreement |", "|---|---|---|---|---|---|---|---|---|", *rows, ""]
    sections.append(f"A row holds where its estimate points the claimed way and its Holm-adjusted one-sided p is "
                    f"at most {ALPHA} (each side adjusted over its own table, as in its own report); rows over all "
                    "tasks are Fisher's combination of that side's per-task p-values, their 'measured' the tasks "
                    "pointing the claimed way. `-`: not run on that side.")
    return "\n".join(sections)
