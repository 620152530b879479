"""The trust store (``fadejax trust DIR``): a user's own run directories open without
--trust-code, pinned to their config and code, so that an edited, moved or copied
directory is refused again, and trust never travels with a directory or between users."""

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
import yaml

from fadejax.engine.store import trust
from fadejax.engine.config import parse_config
from fadejax.engine.store.trust import (
    TrustStoreError, UntrustedCodeError, is_trusted, list_trusted, refuse_untrusted_code, store_path,
    trust_command, trust_directory, trust_own_run, untrust_directory,
)

NET_MODULE = "import torch\n\n\nclass Net(torch.nn.Module):\n    pass\n"


@pytest.fixture
def home(tmp_path, monkeypatch):
    """This user's config directory, in a temporary folder (the real home is never touched)."""
    config = tmp_path / "config-a"
    monkeypatch.setenv("FADEJAX_CONFIG_DIR", str(config))
    monkeypatch.setattr(trust, "_warned", set())
    return config


@pytest.fixture
def code(tmp_path, monkeypatch):
    """A model module ``fadejax_test_nets`` (a package, so that its ``__init__`` is named
    code too) on the import path; returns the module file."""
    site = tmp_path / "site"
    (site / "fadejax_test_nets").mkdir(parents=True)
    (site / "fadejax_test_nets" / "__init__.py").write_text("")
    module = site / "fadejax_test_nets" / "models.py"
    module.write_text(NET_MODULE)
    monkeypatch.syspath_prepend(str(site))
    return module


def _run(parent: Path, name: str = "run", architecture: str = "fadejax_test_nets.models:Net") -> Path:
    """A run directory whose config names a model class by import path (as discover writes it)."""
    data = parse_config({}).model_dump(mode="json")
    data["model"].update(source="file", weights="w.pt", architecture=architecture)
    run = parent / name
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return run


def _open(run: Path) -> None:
    """What reading a run directory's config does (fadejax.stages.summarize.read_run_config), with the run dir passed."""
    data = yaml.safe_load((run / "config.yaml").read_text())
    refuse_untrusted_code(data, f"run directory '{run}'", False, run_dir=run)


def _data(run: Path):
    return yaml.safe_load((run / "config.yaml").read_text())


def test_a_trusted_run_opens_and_an_edited_config_is_refused_again(tmp_path, home, code):
    run = _run(tmp_path)
    with pytest.raises(UntrustedCodeError, match="or trust this directory once with: fadejax trust "):
        _open(run)
    entry = trust_directory(run)
    assert entry["dir"] == str(run.resolve()) and entry["uid"] == os.getuid()
    assert entry["code"] == [["model.architecture", "fadejax_test_nets.models:Net"]]
    assert str(code.resolve()) in entry["files"] and str((code.parent / "__init__.py").resolve()) in entry["files"]
    _open(run)  # no --trust-code needed
    assert is_trusted(run, _data(run))

    data = _data(run)
    data["model"]["architecture"] = "os:system"
    (run / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    assert not is_trusted(run, _data(run))
    with pytest.raises(UntrustedCodeError, match="has changed since") as refused:
        _open(run)
    assert "model.architecture: 'os:system'" in str(refused.value) and "--trust-code" in str(refused.value)


def test_even_an_edit_that_parses_to_the_same_data_is_refused_again(tmp_path, home, code):
    run = _run(tmp_path)
    trust_directory(run)
    (run / "config.yaml").write_text((run / "config.yaml").read_text() + "# edited\n")
    assert not is_trusted(run, _data(run))


def test_the_data_the_caller_parses_must_be_what_was_pinned(tmp_path, home, code):
    run = _run(tmp_path)
    trust_directory(run)
    swapped = _data(run)
    swapped["model"]["architecture"] = "os:system"  # read before the file was restored, say
    assert is_trusted(run, _data(run)) and not is_trusted(run, swapped)


@pytest.mark.parametrize("edited", ["module", "package init"])
def test_editing_the_named_code_refuses_the_directory_again(tmp_path, home, code, edited):
    run = _run(tmp_path)
    trust_directory(run)
    target = code if edited == "module" else code.parent / "__init__.py"
    target.write_text(target.read_text() + "import os\nos.system('echo pwned')\n")
    with pytest.raises(UntrustedCodeError, match="has changed since"):
        _open(run)


def test_a_module_appearing_elsewhere_on_the_import_path_refuses_the_directory_again(tmp_path, home, code, monkeypatch):
    run = _run(tmp_path)
    trust_directory(run)
    shadow = tmp_path / "cwd"
    (shadow / "fadejax_test_nets").mkdir(parents=True)
    (shadow / "fadejax_test_nets" / "__init__.py").write_text("import os\n")
    monkeypatch.chdir(shadow)  # the working directory is on the import path of `python -m fadejax`
    assert not is_trusted(run, _data(run))


def test_a_copy_or_a_move_of_a_trusted_directory_is_not_trusted(tmp_path, home, code):
    run = _run(tmp_path)
    trust_directory(run)
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    with pytest.raises(UntrustedCodeError):
        _open(copy)
    moved = tmp_path / "moved"
    run.rename(moved)
    with pytest.raises(UntrustedCodeError):
        _open(moved)


def test_trust_from_another_users_store_or_directory_is_not_inherited(tmp_path, home, code, monkeypatch):
    run = _run(tmp_path)
    other = tmp_path / "config-b"
    monkeypatch.setenv("FADEJAX_CONFIG_DIR", str(other))  # user B trusts the directory in B's store
    trust_directory(run)
    _open(run)
    monkeypatch.setenv("FADEJAX_CONFIG_DIR", str(home))  # user A: B's trust is not A's
    with pytest.raises(UntrustedCodeError):
        _open(run)
    # a store shipped inside the run directory (or beside it) is never read
    shutil.copy(other / "trusted.json", run / "trusted.json")
    shutil.copy(other / "trusted.json", tmp_path / "trusted.json")
    with pytest.raises(UntrustedCodeError):
        _open(run)
    monkeypatch.setenv("FADEJAX_CONFIG_DIR", str(run))  # only a store in the user's own config directory counts
    _open(run)


def test_an_entry_pinned_for_another_uid_is_refused(tmp_path, home, code):
    run = _run(tmp_path)
    trust_directory(run)
    store = json.loads(store_path().read_text())
    raw = (run / "config.yaml").read_bytes()
    entry = store["trusted"][str(run.resolve())]
    other_pin = trust._pin(run.resolve(), raw, yaml.safe_load(raw), os.getuid() + 1).sha256
    assert other_pin != entry["sha256"]
    for forged in ({"uid": os.getuid() + 1, "sha256": other_pin}, {"sha256": other_pin}):
        entry.update(forged)
        store_path().write_text(json.dumps(store))
        assert not is_trusted(run, _data(run))


@pytest.mark.parametrize("mode", [0o666, 0o620])
def test_a_store_that_others_can_write_is_ignored_with_a_warning(tmp_path, home, code, capsys, mode):
    run = _run(tmp_path)
    trust_directory(run)
    assert is_trusted(run, _data(run))
    store_path().chmod(mode)
    assert not is_trusted(run, _data(run))
    assert "warning: ignoring the trust store" in capsys.readouterr().err
    with pytest.raises(TrustStoreError, match="unsafe"):
        trust_directory(run)  # nor is anything added to it
    assert stat.S_IMODE(store_path().stat().st_mode) == mode


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_store_owned_by_another_user_is_ignored(tmp_path, home, code, capsys):
    run = _run(tmp_path)
    trust_directory(run)
    os.chown(store_path(), os.getuid() + 4242, -1)
    assert not is_trusted(run, _data(run))
    assert "owned by you" in capsys.readouterr().err


def test_a_corrupt_store_is_ignored_and_not_overwritten(tmp_path, home, code, capsys):
    run = _run(tmp_path)
    home.mkdir()
    store_path().write_text("{not json")
    store_path().chmod(0o600)
    assert not is_trusted(run, _data(run))
    assert "corrupt" in capsys.readouterr().err
    with pytest.raises(TrustStoreError):
        trust_directory(run)
    assert store_path().read_text() == "{not json"


def test_the_store_is_private_and_written_atomically(tmp_path, home, code):
    trust_directory(_run(tmp_path))
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE(store_path().stat().st_mode) == 0o600
    assert sorted(p.name for p in home.iterdir()) == ["trusted.json", "trusted.json.lock"]  # no temporary file left


def test_the_config_directory_follows_fadejax_then_xdg_then_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FADEJAX_CONFIG_DIR", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert store_path() == tmp_path / "home" / ".config" / "fadejax" / "trusted.json"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/ignored")
    assert store_path() == tmp_path / "home" / ".config" / "fadejax" / "trusted.json"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert store_path() == tmp_path / "xdg" / "fadejax" / "trusted.json"
    monkeypatch.setenv("FADEJAX_CONFIG_DIR", str(tmp_path / "mine"))
    assert store_path() == tmp_path / "mine" / "trusted.json"


def test_untrusting_refuses_the_directory_again(tmp_path, home, code):
    run = _run(tmp_path)
    trust_directory(run)
    assert untrust_directory(run) and not untrust_directory(run)
    with pytest.raises(UntrustedCodeError):
        _open(run)


def test_a_directory_without_config_cannot_be_trusted(tmp_path, home):
    with pytest.raises(TrustStoreError, match="no config.yaml"):
        trust_directory(tmp_path)
    assert not store_path().exists()


def test_discover_trusts_its_own_run_as_written(tmp_path, home, code):
    run = _run(tmp_path)
    written = _data(run)
    assert trust_own_run(run, written) is not None
    _open(run)

    replaced = _run(tmp_path, "replaced")
    assert trust_own_run(replaced, {**written, "name": "what discover wrote"}) is None  # config.yaml holds something else
    with pytest.raises(UntrustedCodeError):
        _open(replaced)

    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "config.yaml").write_text(yaml.safe_dump(parse_config({}).model_dump(mode="json")))
    assert trust_own_run(plain, _data(plain)) is None  # names no code: never refused, nothing recorded
    assert [e["dir"] for e in list_trusted()] == [str(run.resolve())]


def test_discover_goes_on_when_the_store_is_unusable(tmp_path, home, code, capsys):
    run = _run(tmp_path)
    home.mkdir()
    store_path().write_text("{}")
    store_path().chmod(0o666)
    assert trust_own_run(run, _data(run)) is None
    assert "this run is not trusted for later commands" in capsys.readouterr().err


def test_refusing_without_a_run_directory_is_unchanged(tmp_path, home, code):
    run = _run(tmp_path)
    trust_directory(run)
    with pytest.raises(UntrustedCodeError) as refused:
        refuse_untrusted_code(_data(run), "somewhere", False)  # no run_dir: the store is not consulted
    assert "fadejax trust" not in str(refused.value)
    refuse_untrusted_code(_data(run), "somewhere", True)


def test_the_trust_command(tmp_path, home, code, capsys):
    run = _run(tmp_path)
    assert trust_command([str(run)], remove=False, list_only=False) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"trusted {run.resolve()} (config + 2 code files pinned, sha256 ")
    assert "model.architecture: 'fadejax_test_nets.models:Net'" in line
    code.write_text(code.read_text() + "\n")
    assert trust_command([], remove=False, list_only=True) == 0
    assert capsys.readouterr().out.split()[:2] == [str(run.resolve()), "changed"]
    assert trust_command([str(run), str(tmp_path / "nowhere")], remove=False, list_only=False) == 2
    out, err = capsys.readouterr()
    assert out.startswith(f"trusted {run.resolve()}") and err.startswith("error:") and "nowhere" in err
    assert trust_command([str(run)], remove=True, list_only=False) == 0
    assert capsys.readouterr().out.strip() == f"untrusted {run}"
    assert trust_command([], remove=False, list_only=False) == 2
