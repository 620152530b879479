"""Opening someone else's run directory never runs the code its config names, unless the
user passes --trust-code; a user's own model class must be a torch.nn.Module."""

from pathlib import Path

import pytest
import yaml

from fadejax.cli import EXIT_BAD_INPUT, main
from fadejax.engine.config import parse_config
from fadejax.engine.store.trust import code_named

EVIL_MODULE = '''
from pathlib import Path
Path({marker!r}).write_text("imported")


def payload(**kwargs):
    Path({marker!r}).write_text("called")
'''


@pytest.fixture
def evil(tmp_path, monkeypatch):
    """A module that leaves a marker file when it is imported or its function called."""
    marker = tmp_path / "marker"
    package = tmp_path / "site"
    package.mkdir()
    (package / "evil_fadejax_payload.py").write_text(EVIL_MODULE.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(package))
    return marker


def _shared_run(tmp_path: Path, **changes) -> Path:
    """A run directory as someone might share it: the default's resolved config, edited."""
    data = parse_config({}).model_dump(mode="json")
    for dotted, value in changes.items():
        section, _, field = dotted.partition("__")
        if field:
            data[section][field] = value
        else:
            data[section] = value
    run = tmp_path / "shared-run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(data))
    return run


EDITED_MODEL = {"model__source": "file", "model__weights": "w.pt", "model__architecture": "os:system",
                "model__architecture_kwargs": {"command": "touch /tmp/should-not-exist"}}


@pytest.mark.parametrize("command", [["summarize"], ["restructure", "--top", "1"]])
def test_a_run_directory_naming_os_system_is_refused_and_nothing_runs(tmp_path, capsys, command):
    run = _shared_run(tmp_path, **EDITED_MODEL)
    before = (run / "config.yaml").read_bytes()
    assert main([command[0], str(run), *command[1:]]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")
    assert "model.architecture: 'os:system'" in err[0] and "--trust-code" in err[0]
    assert (run / "config.yaml").read_bytes() == before and sorted(p.name for p in run.iterdir()) == ["config.yaml"]


@pytest.mark.parametrize("command", [["summarize"], ["restructure", "--top", "1"]])
def test_a_foreign_audit_class_is_not_even_imported(tmp_path, capsys, evil, command):
    run = _shared_run(tmp_path, task="evil_fadejax_payload:payload")
    assert main([command[0], str(run), *command[1:]]) == EXIT_BAD_INPUT
    assert "task: 'evil_fadejax_payload:payload'" in capsys.readouterr().err
    assert not evil.exists()


def test_landscape_into_a_foreign_run_directory_imports_nothing(tmp_path, capsys, evil):
    run = _shared_run(tmp_path, task="evil_fadejax_payload:payload")
    assert main(["landscape", "--config", "configs/digits.yaml", "--out", str(run)]) == EXIT_BAD_INPUT
    assert "task: 'evil_fadejax_payload:payload'" in capsys.readouterr().err
    assert not evil.exists()


def test_with_trust_code_a_model_class_still_has_to_be_an_nn_module(tmp_path, evil):
    from bridges.weights import ModelLoadError
    from fadejax.stages.summarize import read_run_config
    from fadejax.engine.build import build_task

    run = _shared_run(tmp_path, **{**EDITED_MODEL, "model__architecture": "evil_fadejax_payload:payload"})
    config = read_run_config(run, trust_code=True)  # trusted: read as asked
    with pytest.raises(ModelLoadError, match="is a function, not a torch.nn.Module subclass"):
        build_task(config, progress=False)
    assert evil.read_text() == "imported"  # imported, as trusting it allows, but never called


def test_a_users_own_config_may_name_its_model_class_but_not_any_callable(tmp_path, capsys):
    config = tmp_path / "mine.yaml"
    config.write_text(yaml.safe_dump({"model": {"source": "file", "weights": str(tmp_path / "w.pt"), "architecture": "os:system",
                                                "architecture_kwargs": {"command": f"touch {tmp_path / 'ran'}"}}}))
    assert main(["discover", "--config", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == EXIT_BAD_INPUT
    assert "'os:system' is a builtin_function_or_method, not a torch.nn.Module subclass" in capsys.readouterr().err
    assert not (tmp_path / "ran").exists() and not (tmp_path / "run").exists()


def test_code_named_lists_every_import_path_and_nothing_else():
    assert code_named(parse_config({}).model_dump(mode="json")) == []
    assert code_named({"task": "pkg.mod:Audit", "model": {"source": "file", "architecture": "x:Y"}}) == [("task", "pkg.mod:Audit")]
    assert code_named({"model": {"source": "file", "architecture": "pkg.nets:Net"}}) == [("model.architecture", "pkg.nets:Net")]
    assert code_named({"model": {"source": "embedded", "architecture": "digits_lenet"}}) == []
    assert code_named({"task": "text", "text": {"model_path": "/models/t5"}}) == []


def test_paths_a_shared_run_directory_reads_outside_it_are_listed_before_use(tmp_path, capsys):
    from fadejax.stages.summarize import note_outside_paths, read_run_config

    run = _shared_run(tmp_path, model__source="file", model__architecture="bridges.digits_cnn:DigitsCNN",
                      model__weights="/elsewhere/weights.pt", data__source="npz", data__path="../../data/held_out.npz")
    note_outside_paths(run, read_run_config(run, trust_code=True))
    note = capsys.readouterr().err
    assert note.startswith("note: run directory") and "model.weights: /elsewhere/weights.pt" in note and "data.path: ../../data/held_out.npz" in note


def test_a_record_naming_a_file_outside_the_run_directory_is_not_read(tmp_path):
    from fadejax.audits import get
    from fadejax.engine.store.trust import inside

    run = tmp_path / "run"
    (run / "images").mkdir(parents=True)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"not for the report")
    examples = [(0, {"image": str(secret)}), (1, {"image": "../../secret.png"}), (2, {"image": "../secret.png"})]
    get("prompt").attach_examples(None, examples, run)
    assert [record["image"] for _, record in examples] == [str(secret), "../../secret.png", "../secret.png"]
    assert inside(run / "images", "a/b.png") == (run / "images" / "a" / "b.png").resolve()
    assert inside(run / "images", "../x.png") is None and inside(run / "images", "/etc/passwd") is None


def test_summarize_does_not_write_through_a_link_a_shared_run_directory_holds(tmp_path, capsys):
    run = _shared_run(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run / "report").symlink_to(elsewhere, target_is_directory=True)
    assert main(["summarize", str(run)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "symbolic links" in err[0] and "report" in err[0]
    assert list(elsewhere.iterdir()) == []


def test_odd_path_names_are_reported_not_crashed_on(tmp_path):
    from fadejax.engine.store.trust import inside, paths_outside

    run = tmp_path / "run"
    run.mkdir()
    data = {"model": {"source": "file", "weights": "w\x00.pt"}, "data": {"source": "npz", "path": str(run / "held_out.npz")}}
    assert paths_outside(data, run) == [("model.weights", "w\x00.pt")]  # the path inside the run is not listed
    assert inside(run, "a\x00b") is None
