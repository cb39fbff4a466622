"""Tests for planners.llm.cache: persistence, corruption handling and JSON round trips."""

import json
import shutil
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # import the project without installing it

from planners.llm.cache import AnswerCache, CacheCorruptError, CacheKey, sampling_json  # noqa: E402
from planners.llm.answers import normalise_plan  # noqa: E402

RECORDED = ROOT / "planners" / "data" / "recorded_vicuna33b_plans.json"
PROMPT = "You are a teacher for a grid-world agent."


def key(sentence="Agent sees <key>, holds <nothing>.", model="m", prompt=PROMPT, temperature=0.7, n=10):
    return CacheKey.build(model, prompt, sentence, temperature, n)


def filled_cache(path, entries=80):
    """A closed cache file big enough to span many database pages."""
    with AnswerCache(path) as cache:
        for i in range(entries):
            cache.put(key(f"Agent sees <thing {i}>, holds <nothing>."), [f"answer {i} " * 20] * 3,
                      ["explore", None, "go to <key>"])
    return path


def test_put_get_survives_reopening(tmp_path):
    path = tmp_path / "sub" / "cache.sqlite"
    raw = ["Action: {go to <key>, pick up <key>}", "garbage", "动作：{explore}"]
    parsed = ["go to <key>, pick up <key>", None, "explore"]
    with AnswerCache(path) as cache:
        assert cache.get(key()) is None
        cache.put(key(), raw, parsed, task="simpledoorkey")
    with AnswerCache(path) as cache:
        hit = cache.get(key())
        assert hit.raw_answers == raw and hit.parsed_plans == parsed
        assert hit.task == "simpledoorkey" and hit.created > 0
        assert len(cache) == 1


@pytest.mark.parametrize(
    "other",
    [
        dict(model="other-model"),
        dict(prompt=PROMPT + " "),
        dict(sentence="Agent sees <door>, holds <nothing>."),
        dict(temperature=0.8),
        dict(n=5),
    ],
)
def test_every_key_part_matters(tmp_path, other):
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        cache.put(key(), ["a"], ["explore"])
        assert cache.get(key(**other)) is None
        assert cache.get(key()) is not None


def test_key_hashes_prompt_and_canonicalises_sampling():
    k = key()
    assert len(k.prompt_sha256) == 64 and PROMPT not in repr(k)
    assert k.sampling == sampling_json(0.7, 10) == '{"n":10,"temperature":0.7}'
    assert CacheKey.build("m", PROMPT, "s", 1, 10).sampling == CacheKey.build("m", PROMPT, "s", 1.0, 10).sampling


def test_put_rejects_misaligned_lists(tmp_path):
    with AnswerCache(tmp_path / "c.sqlite") as cache, pytest.raises(ValueError):
        cache.put(key(), ["a", "b"], ["explore"])


def test_distribution_counts_identical_plans():
    plans = ["go to <key>"] * 7 + ["explore"] * 3
    assert AnswerCache.distribution(plans) == [("go to <key>", 0.7), ("explore", 0.3)]
    assert AnswerCache.distribution([]) == []
    with pytest.raises(ValueError):
        AnswerCache.distribution(["explore", None])


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: b"\x00garbage\xff" * 500, id="garbage"),
        pytest.param(lambda data: data[: len(data) // 2], id="cut-in-half"),
        pytest.param(lambda data: data[: len(data) // 2 + 100], id="cut-mid-page"),
        pytest.param(lambda data: data[:50], id="cut-in-header"),
        pytest.param(lambda data: data[:4096] + b"\xab" * (len(data) - 4096), id="pages-overwritten"),
        pytest.param(lambda data: data[:-4096], id="last-page-cut"),
        pytest.param(lambda data: data[:8192] + b"\x00" * 4096 + data[12288:], id="page-zeroed"),
    ],
)
def test_corrupt_file_raises_and_is_left_untouched(tmp_path, damage):
    path = filled_cache(tmp_path / "cache.sqlite")
    assert path.stat().st_size >= 8 * 4096, "the damage patterns below assume several pages"
    damaged = damage(path.read_bytes())
    path.write_bytes(damaged)
    before = set(tmp_path.iterdir())

    with pytest.raises(CacheCorruptError) as info:
        cache = AnswerCache(path)
        cache.get(key())  # in case damage only shows on reading

    message = str(info.value)
    assert str(path) in message and "delete" in message and "\n" not in message
    assert path.read_bytes() == damaged, "the damaged file must stay byte-identical"
    assert set(tmp_path.iterdir()) == before, "no files may be moved, deleted or added"


def test_foreign_sqlite_database_is_refused(tmp_path):
    import sqlite3

    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE photos (id INTEGER)")
    db.close()
    data = path.read_bytes()
    with pytest.raises(CacheCorruptError, match="not an LLM4Teach answer cache"):
        AnswerCache(path)
    assert path.read_bytes() == data


def test_empty_file_becomes_a_new_cache(tmp_path):
    path = tmp_path / "empty.sqlite"
    path.write_bytes(b"")
    with AnswerCache(path) as cache:
        cache.put(key(), ["a"], ["explore"])
        assert cache.get(key()).parsed_plans == ["explore"]


def test_thread_safe_writes_and_reads(tmp_path):
    errors = []
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        def worker(t):
            try:
                for i in range(40):
                    k = key(f"sentence {t}-{i}")
                    cache.put(k, [str(i)], ["explore"])
                    assert cache.get(k).raw_answers == [str(i)]
            except Exception as exc:  # collected so the main thread can fail the test
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert len(cache) == 8 * 40


def _as_dicts(table):
    """observation -> {plan: probability} with plans normalised."""
    result = {}
    for entry in table:
        plans = {}
        for item in entry["plans"]:
            plan = normalise_plan(item["plan"])
            plans[plan] = plans.get(plan, 0.0) + item["probability"]
        result[entry["observation"]] = plans
    return result


@pytest.mark.parametrize("task", ["simpledoorkey", "coloreddoorkey", "twodoor"])
def test_recorded_table_round_trips_through_the_cache(tmp_path, task):
    recorded = json.loads(RECORDED.read_text())
    template = key(sentence="", model="vicuna-33b")
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        assert cache.import_json(RECORDED, task, template) == len(recorded[task])
        out = tmp_path / "exported.json"
        document = cache.export_json(out, task)

    exported = json.loads(out.read_text())
    assert exported == document and list(exported) == [task]
    # Same format: observation + plans sorted by probability, probabilities summing to 1.
    for entry in exported[task]:
        assert set(entry) == {"observation", "plans"}
        probabilities = [item["probability"] for item in entry["plans"]]
        assert probabilities == sorted(probabilities, reverse=True)
        assert sum(probabilities) == pytest.approx(1.0)
        assert all(set(item) == {"plan", "probability"} for item in entry["plans"])
    assert [e["observation"] for e in exported[task]] == [e["observation"] for e in recorded[task]]

    want, got = _as_dicts(recorded[task]), _as_dicts(exported[task])
    assert got.keys() == want.keys()
    for observation, plans in want.items():
        assert got[observation].keys() == plans.keys(), observation
        for plan, probability in plans.items():
            assert got[observation][plan] == pytest.approx(probability, abs=1e-9)


def test_imported_entries_answer_lookups_of_the_template_key(tmp_path):
    template = key(sentence="", model="vicuna-33b", n=10)
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        cache.import_json(RECORDED, "simpledoorkey", template)
        hit = cache.get(key(sentence="Agent sees <key>, holds <nothing>.", model="vicuna-33b", n=10))
        assert hit is not None
        assert AnswerCache.distribution(hit.parsed_plans) == [("go to <key>, pick up <key>", 0.98),
                                                              ("pick up <key>", 0.02)]
        assert len(hit.raw_answers) == 50  # 49 + 1 synthetic answers reproduce 0.98 / 0.02


def test_export_keeps_other_tasks_and_filters_by_task_and_template(tmp_path):
    out = tmp_path / "plans.json"
    shutil.copy(RECORDED, out)
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        cache.put(key("Agent sees <ball>."), ["x", "y", "z", "w"], ["go to <ball>", None, "go to <ball>", None],
                  task="newtask")
        cache.put(key("Agent sees <box>.", model="other"), ["x"], ["go to <box>"], task="newtask")
        cache.put(key("Agent sees <key>."), ["x"], ["go to <key>"], task="elsewhere")
        cache.export_json(out, "newtask", key_template=key(""))

    document = json.loads(out.read_text())
    assert document["simpledoorkey"] == json.loads(RECORDED.read_text())["simpledoorkey"]
    assert document["newtask"] == [{
        "observation": "Agent sees <ball>.",
        "plans": [{"plan": "go to <ball>", "probability": 0.5}, {"plan": "explore", "probability": 0.5}],
    }]


def test_import_unknown_task_is_a_clear_error(tmp_path):
    with AnswerCache(tmp_path / "c.sqlite") as cache, pytest.raises(KeyError, match="nosuchtask"):
        cache.import_json(RECORDED, "nosuchtask", key(""))
