"""Persistent SQLite cache of LLM teacher answers.

An entry is keyed by (model, sha256 of the system prompt, sentence, sampling
settings) and holds the raw answer texts, the plans parsed from them (None
where an answer was unparseable), the task it was asked for and a creation
time.  A second training run with the same teacher settings therefore makes
no HTTP requests at all.

The cache can be exported to, and pre-filled from, the recorded-plans JSON
format shipped in ``planners/data`` (``{task: [{"observation", "plans":
[{"plan", "probability"}]}]}``).

A damaged cache file is never repaired, moved or deleted here: opening it
raises :class:`CacheCorruptError` and leaves the bytes untouched, so the
user decides what to do with it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sqlite3
import struct
import threading
import time
from collections import Counter
from pathlib import Path

from planners.llm.answers import normalise_plan

__all__ = ["AnswerCache", "CacheKey", "CachedAnswers", "CacheCorruptError", "sampling_json"]

_SQLITE_MAGIC = b"SQLite format 3\x00"
_SCHEMA_VERSION = "1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS answers (
    model TEXT NOT NULL,
    prompt_sha256 TEXT NOT NULL,
    sentence TEXT NOT NULL,
    sampling TEXT NOT NULL,
    task TEXT,
    raw_answers TEXT NOT NULL,
    parsed_plans TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (model, prompt_sha256, sentence, sampling)
);
"""
# Largest answer count used to represent recorded probabilities exactly on import.
_MAX_IMPORT_SAMPLES = 1000


class CacheCorruptError(RuntimeError):
    """The cache file is damaged or is not an answer cache; the file is left untouched."""


def sampling_json(temperature: float, n: int, seed: int | None = None) -> str:
    """Return the canonical JSON spelling of the sampling settings used in cache keys (a seed only when set,
    so keys made before seeds existed stay valid)."""
    settings = {"n": int(n), "temperature": float(temperature), **({"seed": int(seed)} if seed is not None else {})}
    return json.dumps(settings, sort_keys=True, separators=(",", ":"))


@dataclasses.dataclass(frozen=True)
class CacheKey:
    """Identifies one teacher question: who was asked what, and how."""

    model: str
    prompt_sha256: str
    sentence: str
    sampling: str

    @classmethod
    def build(cls, model: str, system_prompt: str, sentence: str, temperature: float, n: int,
              seed: int | None = None) -> "CacheKey":
        """Make a key from the plain settings (hashes the prompt, canonicalises sampling)."""
        digest = hashlib.sha256(system_prompt.encode("utf-8")).hexdigest()
        return cls(model, digest, sentence, sampling_json(temperature, n, seed))


@dataclasses.dataclass(frozen=True)
class CachedAnswers:
    """What the cache holds for one key."""

    raw_answers: list[str]
    parsed_plans: list[str | None]
    created: float
    task: str | None = None


def _counts_for(probabilities: list[float]) -> tuple[list[int], int]:
    """Smallest sample count that turns ``probabilities`` into whole answer counts.

    Recorded tables were made from a finite number of samples (0.98/0.02 means
    49 of 50), so a small total usually reproduces them exactly; otherwise we
    round at ``_MAX_IMPORT_SAMPLES`` and keep every listed plan at least once.
    """
    total_p = sum(probabilities)
    if total_p <= 0:
        raise ValueError("probabilities must sum to a positive number")
    shares = [p / total_p for p in probabilities]
    for total in range(1, _MAX_IMPORT_SAMPLES + 1):
        counts = [round(s * total) for s in shares]
        if sum(counts) == total and all(abs(c - s * total) < 1e-6 * total for c, s in zip(counts, shares)):
            if all(c > 0 for c, s in zip(counts, shares) if s > 0):
                return counts, total
    counts = [max(1, round(s * _MAX_IMPORT_SAMPLES)) if s > 0 else 0 for s in shares]
    return counts, sum(counts)


class AnswerCache:
    """SQLite-backed store of teacher answers, safe to share between threads.

    Args:
        path: cache file; created (with parent folders) when the first answer is stored, so a run that
            fails before asking anything leaves no file behind.

    Raises:
        CacheCorruptError: the file exists but is damaged or is not an answer cache.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = None
        self._check_file()
        if self.path.exists():
            self._open()

    def _open(self) -> None:
        """Connect (creating the file and its folders if needed) and verify the schema."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30.0)
        except sqlite3.Error as exc:
            raise self._corrupt(f"cannot be opened ({exc})") from None
        try:
            self._verify_and_init()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise self._corrupt(f"is not a readable SQLite database ({exc})") from None
        except CacheCorruptError:
            self._db.close()
            raise

    def _connection(self) -> sqlite3.Connection | None:
        """The open database, or None while the file does not exist yet."""
        if self._db is None and self.path.exists():
            self._open()
        return self._db

    def __repr__(self) -> str:
        return f"AnswerCache({str(self.path)!r})"

    # ------------------------------------------------------------ integrity

    def _corrupt(self, what: str) -> CacheCorruptError:
        what = " ".join(what.split())  # SQLite's check reports span several lines
        return CacheCorruptError(
            f"answer cache {self.path} {what}; move it away or delete it to start a fresh cache "
            f"(the file was left unchanged)"
        )

    def _check_file(self) -> None:
        """Reject damaged files by their header before SQLite may touch them."""
        if not self.path.exists():
            return
        if not self.path.is_file():
            raise self._corrupt("is not a regular file")
        size = self.path.stat().st_size
        if size == 0:
            return  # SQLite treats an empty file as a new database
        with open(self.path, "rb") as handle:
            header = handle.read(100)
        if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
            raise self._corrupt("is not an SQLite database (bad header)")
        page_size = struct.unpack(">H", header[16:18])[0]
        page_size = 65536 if page_size == 1 else page_size
        if page_size < 512 or page_size & (page_size - 1):
            raise self._corrupt("has a damaged header (bad page size)")
        if size % page_size:
            raise self._corrupt(f"is truncated ({size} bytes is not a whole number of {page_size}-byte pages)")
        change_counter, page_count = struct.unpack(">II", header[24:32])
        (valid_for,) = struct.unpack(">I", header[92:96])
        # The in-header page count is only meaningful when the two counters agree.
        if change_counter == valid_for and page_count * page_size > size:
            raise self._corrupt(f"is truncated ({size} bytes, header promises {page_count * page_size})")

    def _verify_and_init(self) -> None:
        """Run SQLite's own check, confirm it is our schema, then create tables if new."""
        db = self._db
        result = db.execute("PRAGMA quick_check").fetchone()
        if not result or result[0] != "ok":
            raise self._corrupt(f"failed SQLite's integrity check ({result[0] if result else 'no result'})")
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and not {"meta", "answers"} <= tables:
            raise self._corrupt("is an SQLite database but not an LLM4Teach answer cache")
        if tables:
            row = db.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone()
            if not row or row[0] != _SCHEMA_VERSION:
                raise self._corrupt(f"has schema version {row[0] if row else 'none'}, expected {_SCHEMA_VERSION}")
        db.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL cannot corrupt the file; a power cut may only lose the last answers.
        db.execute("PRAGMA synchronous=NORMAL")
        with db:
            db.executescript(_SCHEMA)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (_SCHEMA_VERSION,))

    # ------------------------------------------------------------- basic API

    def get(self, key: CacheKey) -> CachedAnswers | None:
        """Return the stored answers for ``key``, or None if it was never asked."""
        with self._lock:
            if self._connection() is None:
                return None
            try:
                row = self._db.execute(
                    "SELECT raw_answers, parsed_plans, created, task FROM answers "
                    "WHERE model=? AND prompt_sha256=? AND sentence=? AND sampling=?",
                    (key.model, key.prompt_sha256, key.sentence, key.sampling),
                ).fetchone()
            except sqlite3.DatabaseError as exc:
                raise self._corrupt(f"could not be read ({exc})") from None
        if row is None:
            return None
        return CachedAnswers(json.loads(row[0]), json.loads(row[1]), row[2], row[3])

    def put(
        self,
        key: CacheKey,
        raw_answers: list[str],
        parsed_plans: list[str | None],
        task: str | None = None,
    ) -> None:
        """Store (or replace) the answers for ``key``; ``task`` is kept for :meth:`export_json`."""
        self._write("REPLACE", key, raw_answers, parsed_plans, task)

    def put_first(self, key: CacheKey, raw_answers: list[str], parsed_plans: list[str | None],
                  task: str | None = None) -> CachedAnswers:
        """Store the answers for ``key`` unless some writer stored it first; return what the cache holds.

        Runs in parallel (a sweep's workers) that miss the same sentence at once each ask the LLM; with
        this, the first answers stored are the ones every run uses, so one sentence has one teacher.
        """
        self._write("IGNORE", key, raw_answers, parsed_plans, task)
        return self.get(key)

    def _write(self, conflict: str, key: CacheKey, raw_answers: list[str], parsed_plans: list[str | None],
               task: str | None) -> None:
        """INSERT OR ``conflict`` (REPLACE or IGNORE) one entry."""
        if len(raw_answers) != len(parsed_plans):
            raise ValueError("raw_answers and parsed_plans must have the same length")
        row = (
            key.model, key.prompt_sha256, key.sentence, key.sampling, task,
            json.dumps(list(raw_answers), ensure_ascii=False),
            json.dumps(list(parsed_plans), ensure_ascii=False),
            time.time(),
        )
        with self._lock:
            if self._db is None:
                self._open()
            with self._db:
                self._db.execute(f"INSERT OR {conflict} INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)

    def __len__(self) -> int:
        with self._lock:
            if self._connection() is None:
                return 0
            return self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]

    def close(self) -> None:
        """Close the database (checkpointing the write-ahead log into the file)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> "AnswerCache":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ----------------------------------------------------- distributions/JSON

    @staticmethod
    def distribution(plans: list[str]) -> list[tuple[str, float]]:
        """Turn a final plan list into (plan, probability) pairs, most likely first.

        Probabilities are counts of identical plans divided by ``len(plans)``;
        ties keep first-seen order.  The caller decides beforehand what an
        unparseable answer becomes (e.g. ``"explore"``).
        """
        if not plans:
            return []
        if any(plan is None for plan in plans):
            raise ValueError("plans must be final: replace unparseable (None) answers before counting")
        counts = Counter(plans)
        total = len(plans)
        return sorted(((plan, count / total) for plan, count in counts.items()), key=lambda item: -item[1])

    def _rows_for_task(self, task: str, key_template: CacheKey | None) -> list[tuple]:
        query = "SELECT sentence, parsed_plans FROM answers WHERE task=?"
        args: list = [task]
        if key_template is not None:
            query += " AND model=? AND prompt_sha256=? AND sampling=?"
            args += [key_template.model, key_template.prompt_sha256, key_template.sampling]
        with self._lock:
            if self._connection() is None:
                return []
            return self._db.execute(query + " ORDER BY rowid", args).fetchall()

    def export_json(
        self,
        path: str | os.PathLike,
        task: str,
        key_template: CacheKey | None = None,
        fallback_plan: str = "explore",
    ) -> dict:
        """Write the entries of ``task`` in the recorded-plans JSON format.

        Unparseable answers count as ``fallback_plan``.  ``key_template``
        (its sentence is ignored) restricts the export to one model, prompt
        and sampling setting.  If ``path`` already holds a recorded-plans file,
        other tasks in it are kept.  Returns the written document.
        """
        entries = []
        for sentence, parsed_json in self._rows_for_task(task, key_template):
            plans = [fallback_plan if plan is None else plan for plan in json.loads(parsed_json)]
            entries.append({
                "observation": sentence,
                "plans": [{"plan": plan, "probability": prob} for plan, prob in self.distribution(plans)],
            })
        path = Path(path)
        document = {}
        if path.exists() and path.stat().st_size:
            with open(path, encoding="utf-8") as handle:
                document = json.load(handle)
        document[task] = entries
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=1, ensure_ascii=False)
            handle.write("\n")
        os.replace(tmp, path)
        return document

    def import_json(self, path: str | os.PathLike, task: str, key_template: CacheKey) -> int:
        """Pre-fill the cache with the ``task`` table of a recorded-plans JSON file.

        Each observation becomes an entry under ``key_template`` with its
        sentence replaced by the observation.  Probabilities are turned into
        the smallest whole number of synthetic answers that reproduces them
        (e.g. 50 answers for 0.98/0.02), so an entry may hold more answers
        than the ``n`` in its sampling settings.  Plans are normalised with
        :func:`normalise_plan` (plans equal after that are merged).  Returns
        the entry count.
        """
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
        if task not in document:
            raise KeyError(f"task {task!r} not in {path} (has: {', '.join(sorted(document))})")
        imported = 0
        for entry in document[task]:
            plans = [normalise_plan(item["plan"]) for item in entry["plans"]]
            counts, _ = _counts_for([float(item["probability"]) for item in entry["plans"]])
            parsed = [plan for plan, count in zip(plans, counts) for _ in range(count)]
            raw = ["Action: {" + plan + "}" for plan in parsed]
            key = dataclasses.replace(key_template, sentence=entry["observation"])
            self.put(key, raw, parsed, task=task)
            imported += 1
        return imported
