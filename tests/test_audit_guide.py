"""docs/write-your-own-audit.md works as written: an audit kept outside fadejax (a
scikit-learn classifier of tabular data) runs discover, landscape, summarize and
restructure through the CLI; it registers from a config field, an entry point or code;
and no core module names a particular audit."""

import ast
import json
import re
import shlex
import sys
from pathlib import Path

import pytest

from fadejax import audits
from fadejax.engine import registry
from fadejax.cli import EXIT_BAD_INPUT, main
from report_page import open_at_first_failing_point
from fadejax.engine.store.records import read_records, records_path

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "write-your-own-audit.md"
TINY = ["--set", "run.iterations=6", "--set", "run.num_envs=16", "--quiet"]  # 96 queries: two cells visited 5 times (restructure --top 2)


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    """A fresh working directory holding the repository's examples/, as a user's would."""
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture()
def clean_registry(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    for name in [m for m in sys.modules if m.startswith("examples")]:
        monkeypatch.delitem(sys.modules, name)


def _guide_commands() -> list[list[str]]:
    blocks = re.findall(r"```bash\n(.*?)```", GUIDE.read_text(), re.S)
    lines = [line for block in blocks for line in block.splitlines() if line.startswith(".venv/bin/fadejax ")]
    return [shlex.split(line)[1:] for line in lines]


def test_the_guides_commands_run_on_an_audit_from_outside_the_package(workdir, clean_registry, capsys):
    commands = _guide_commands()
    assert [c[0] for c in commands] == ["discover", "landscape", "summarize", "restructure"]
    for argv in commands:
        argv = argv + (TINY if argv[0] == "discover" else ["--quiet"] if argv[0] == "landscape" else [])
        code = main(argv)
        assert code == 0, f"fadejax {shlex.join(argv)}: {capsys.readouterr().err}"
    run = workdir / "runs" / "wine"
    assert json.loads((run / "run.json").read_text())["status"] == "complete"
    records = list(read_records(records_path(run)))
    assert len(records) == 6 * 16 and {"label", "predicted", "p_true"} <= set(records[0])
    truth = json.loads((run / "ground_truth.json").read_text())
    assert len(truth["failure_rates"]) == 5 * 5 * 3 and truth["statistics"]["clean_accuracy"] > 0.8
    summary = json.loads((run / "report" / "summary.json").read_text())
    assert summary["kind"] == "fields"  # the report shows a failure's own record fields
    assert json.loads((run / "report" / "modes.json").read_text())["modes"][0]["cell"] == 0
    shift = json.loads((workdir / "runs" / "wine-restructured" / "shift_report.json").read_text())
    assert shift["task"] == "tabular" and len(shift["modes"]) == 2
    assert all(m["held_out_failure_rate_after"] <= m["held_out_failure_rate_before"] for m in shift["modes"])
    status = json.loads((workdir / "runs" / "wine-restructured" / "rediscovery" / "run.json").read_text())
    assert status["status"] == "complete" and status["restructured_from"] == "runs/wine"
    # a resumed run imports the audit its config names again, in a fresh registry
    registry._REGISTRY.pop("tabular"), registry._REGISTRY.pop("examples.tabular_audit:TabularAudit")
    assert main(["discover", "--config", "examples/tabular.yaml", "--out", "runs/wine", "--resume", *TINY]) == 0


def test_the_report_lists_a_plugin_audits_record_fields_as_text(workdir, clean_registry, browser):
    """The generic view a new audit gets: each failure's record fields, as text (a plugin's
    values are untrusted, like model outputs)."""
    import examples.tabular_audit as tabular
    from fadejax.engine.config import load_config
    from fadejax.stages.report import write_report
    from fadejax.stages.discover import discover
    from fadejax.stages.summarize import load_summary

    hostile = "<img src=x onerror=window.__pwned=1>"
    evaluate = tabular.TabularTask.evaluate

    def with_a_hostile_field(self, inputs, pending):
        core, fields = evaluate(self, inputs, pending)
        return core, {**fields, "note": [hostile] * len(fields["label"])}

    tabular.TabularTask.evaluate = with_a_hostile_field
    try:
        config = load_config("examples/tabular.yaml", ["run.iterations=3", "run.num_envs=16"])
        discover(config, workdir / "run", progress=False)
    finally:
        tabular.TabularTask.evaluate = evaluate
    files = write_report(load_summary(workdir / "run", trust_code=True), workdir / "run" / "report")
    page, errors = open_at_first_failing_point(browser, files)
    shown = page.locator("#failures figure.failure.fields").first.inner_text()
    assert "p_true: " in shown and "predicted: " in shown and hostile in shown  # the fields, as text ...
    assert page.evaluate("window.__pwned") is None and page.locator("#failures img").count() == 0  # ... never as HTML
    assert errors == []


def test_an_entry_point_registers_an_installed_audit(workdir, clean_registry, tmp_path, monkeypatch):
    dist = tmp_path / "site" / "tabular_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tabular-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[fadejax.audits]\ntabular = examples.tabular_audit:TabularAudit\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert "tabular" in audits.names()
    assert type(audits.get("tabular")).__name__ == "TabularAudit"
    from fadejax.engine.config import parse_config

    config = parse_config({"task": "tabular", "run": {"iterations": 2, "num_envs": 8}})
    assert config.tabular.dataset == "wine" and [a.name for a in config.space.axes] == ["proline", "flavanoids", "color_intensity"]


def test_an_audit_without_restructure_refuses_it_in_one_line(workdir, clean_registry, capsys):
    from examples.tabular_audit import TabularAudit

    class Fixed(TabularAudit):
        name = "tabular-fixed"
        restructure_defaults = None

    audits.register(Fixed)
    (workdir / "fixed.yaml").write_text("task: tabular-fixed\nname: fixed\n")
    assert main(["discover", "--config", "fixed.yaml", "--out", "runs/fixed", *TINY]) == 0
    capsys.readouterr()
    assert main(["restructure", "runs/fixed", "--top", "1", "--trust-code"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "has no restructure" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("task, message", [
    ("tabluar", "unknown task 'tabluar'; known audits: ['conditions', 'image', 'prompt', 'text']"),
    ("examples.no_such_module:Audit", "cannot import module 'examples.no_such_module'"),
    ("examples.tabular_audit:NoSuchClass", "module 'examples.tabular_audit' has no 'NoSuchClass'"),
    ("examples.tabular_audit:LinearModel", "is not a fadejax.audits.Audit subclass"),
])
def test_a_config_naming_no_audit_exits_2_in_one_line(workdir, clean_registry, capsys, task, message):
    (workdir / "bad.yaml").write_text(f"task: '{task}'\n")
    assert main(["discover", "--config", "bad.yaml", "--out", "runs/bad"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1, err
    assert not (workdir / "runs").exists()


def test_a_section_of_another_audit_is_named_as_such(workdir):
    from fadejax.engine.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match="text: this section configures the 'text' audit; this config's task is 'image'"):
        parse_config({"text": {"model": "elsewhere"}})
    # run directories written before audits were plugins hold every audit's default section
    old = {"text": parse_config({"task": "text"}).text.model_dump(mode="json"), "prompt": None}
    assert parse_config(old) == parse_config({})


def test_no_core_module_names_a_particular_audit():
    """Outside fadejax/audits/, no module imports an audit's package or compares a task
    (or a task's kind) with an audit's name: the core goes through the registry."""
    names = set(audits.BUILTIN)
    offenders = []
    for path in sorted((ROOT / "fadejax").rglob("*.py")):
        if "audits" in path.relative_to(ROOT / "fadejax").parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fadejax.audits."):
                offenders.append(f"{path.name}:{node.lineno} imports {node.module}")
            if isinstance(node, ast.Compare):
                constants = [c.value for c in [node.left, *node.comparators] if isinstance(c, ast.Constant)]
                for c in node.comparators:
                    if isinstance(c, (ast.Tuple, ast.List, ast.Set)):
                        constants += [e.value for e in c.elts if isinstance(e, ast.Constant)]
                if names & set(constants):
                    offenders.append(f"{path.name}:{node.lineno} compares with {sorted(names & set(constants))}")
    assert offenders == []
