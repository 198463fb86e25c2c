import pytest

from gn_detection.config import ConfigError, get_cfg


def write(path, text):
    path.write_text(text)
    return str(path)


def test_base_inheritance_applies_the_base_then_the_child(tmp_path):
    write(tmp_path / "base.yaml", "MODEL:\n  RESNETS:\n    DEPTH: 101\n    NORM: GN\n")
    child = write(tmp_path / "child.yaml", '_BASE_: "base.yaml"\nMODEL:\n  RESNETS:\n    DEPTH: 50\n')
    cfg = get_cfg()
    cfg.merge_from_file(child)
    assert cfg.MODEL.RESNETS.DEPTH == 50
    assert cfg.MODEL.RESNETS.NORM == "GN"


def test_unknown_key_names_the_key_and_the_file(tmp_path):
    path = write(tmp_path / "typo.yaml", "MODEL:\n  RESNETS:\n    NROM: GN\n")
    with pytest.raises(ConfigError) as error:
        get_cfg().merge_from_file(path)
    assert path in str(error.value) and "MODEL.RESNETS.NROM" in str(error.value)


def test_unknown_key_in_a_base_file_is_reported_against_the_file_given(tmp_path):
    write(tmp_path / "base.yaml", "SOLVER:\n  LEARNING_RATE: 0.1\n")
    child = write(tmp_path / "child.yaml", '_BASE_: "base.yaml"\n')
    with pytest.raises(ConfigError, match=r"child\.yaml: unknown config key SOLVER\.LEARNING_RATE"):
        get_cfg().merge_from_file(child)


def test_wrong_type_names_the_file_and_the_key(tmp_path):
    path = write(tmp_path / "bad.yaml", "MODEL:\n  RESNETS:\n    DEPTH: fifty\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: .*MODEL\.RESNETS\.DEPTH"):
        get_cfg().merge_from_file(path)


def test_missing_file_and_broken_yaml_are_named(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        get_cfg().merge_from_file(str(tmp_path / "absent.yaml"))
    path = write(tmp_path / "broken.yaml", "MODEL: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: cannot be parsed as YAML"):
        get_cfg().merge_from_file(path)


def test_yaml_tags_that_run_code_are_refused(tmp_path):
    path = write(tmp_path / "evil.yaml", f'MODEL: !!python/object/apply:os.system ["touch {tmp_path}/pwned"]\n')
    with pytest.raises(ConfigError):
        get_cfg().merge_from_file(path)
    assert not (tmp_path / "pwned").exists()


def test_overrides_from_the_command_line():
    cfg = get_cfg()
    cfg.merge_from_list(["MODEL.RESNETS.DEPTH", "101", "SOLVER.STEPS", "(10, 20)"])
    assert cfg.MODEL.RESNETS.DEPTH == 101 and cfg.SOLVER.STEPS == (10, 20)
    with pytest.raises(ConfigError, match="unknown config key MODEL.RESNET.DEPTH"):
        cfg.merge_from_list(["MODEL.RESNET.DEPTH", "101"])
    with pytest.raises(ConfigError, match="KEY VALUE pairs"):
        cfg.merge_from_list(["MODEL.RESNETS.DEPTH"])


def test_get_cfg_returns_independent_copies():
    a, b = get_cfg(), get_cfg()
    a.MODEL.RESNETS.DEPTH = 101
    assert b.MODEL.RESNETS.DEPTH == 50
