"""The settings tree: one declaration per setting feeds the flags, the YAML files, config.json and sweep --set."""
import json

import pytest

import main
from bench.sweep_plan import parse_settings
from utils.config import CONFIG_DIR, SETTINGS, ConfigError, RunConfig, build_config, read_yaml


def test_defaults_come_from_the_tree_and_task_files_override_them():
    simple = build_config("SimpleDoorKey", {})
    assert simple.student.ego_size == RunConfig().student.ego_size == 11
    twodoor = build_config("TwoDoor", {})
    assert twodoor.student.ego_size == 13 and twodoor.schedule.off_after == 200
    assert build_config("TwoDoor", {"ego_size": 9}).student.ego_size == 9, "a flag beats the task file"


def test_every_task_file_names_only_known_settings():
    for path in CONFIG_DIR.glob("*.yaml"):
        assert set(read_yaml(path)) <= set(SETTINGS), path


def test_config_json_round_trips_and_old_flat_files_still_read(tmp_path):
    config = build_config("ColoredDoorKey", {"lr": 3e-4, "teacher": "soft", "llm_samples": 5})
    document = json.loads(json.dumps(config.to_json()))
    assert document["ppo"]["lr"] == 3e-4 and document["teacher"]["mode"] == "soft"
    assert RunConfig.from_json(document) == config
    flat = config.flat()
    assert flat["llm_samples"] == 5 and flat["teacher"] == "soft"
    assert RunConfig.from_json(flat) == config, "a config.json written before the settings had sections"


def test_sweep_set_values_are_typed_by_their_declaration():
    values = parse_settings(["lr=0.002", "num_envs=8", "norm_adv=false", "seed_list=1,2", "total_steps=none",
                             "teacher=soft"])
    assert values == {"lr": 0.002, "num_envs": 8, "norm_adv": False, "seed_list": [1, 2], "total_steps": None,
                      "teacher": "soft"}
    assert isinstance(parse_settings(["lr=1"])["lr"], float)
    with pytest.raises(ConfigError, match="cannot read 'many' as int"):
        parse_settings(["num_envs=many"])
    with pytest.raises(ConfigError, match="unknown setting 'learning_rate'"):
        parse_settings(["learning_rate=1"])


def test_every_setting_is_a_train_flag_with_its_default_in_the_help():
    train = main.build_parser()._subparsers._group_actions[0].choices["train"]
    flags = {a.dest: a for a in train._actions}
    for spec in SETTINGS.values():
        if not spec.meta["cli"]:
            continue
        assert spec.flag in flags, spec.flag
        if spec.default not in (None, False, "") and not spec.is_list:
            assert f"(default: {spec.default})" in flags[spec.flag].help, spec.flag


def test_wrong_types_in_a_task_file_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr("utils.config.CONFIG_DIR", tmp_path)
    (tmp_path / "simpledoorkey.yaml").write_text("num_envs: sixteen\n")
    with pytest.raises(ConfigError, match="--num_envs must be an int, got 'sixteen'"):
        build_config("SimpleDoorKey", {})
    (tmp_path / "simpledoorkey.yaml").write_text("learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="unknown settings: learning_rate"):
        build_config("SimpleDoorKey", {})
