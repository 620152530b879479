"""The ``fadejax`` command lines of the README and the documentation's user guide, for the
tests that parse and run them."""

import re
import shlex
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def documented_pages() -> list[Path]:
    """README.md, then the pages of mkdocs.yml's "User guide", in the site's order (the
    order a reader runs their commands in). The two extension guides have their own tests."""
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    guide = next(entry["User guide"] for entry in nav if isinstance(entry, dict) and "User guide" in entry)
    return [ROOT / "README.md"] + [ROOT / "docs" / next(iter(page.values())) for page in guide]


def readme_commands() -> list[list[str]]:
    """Every ``fadejax ...`` command line in the code blocks of :func:`documented_pages`, as argv after ``fadejax``."""
    commands = []
    for page in documented_pages():
        block, in_block = [], False
        for line in page.read_text().splitlines():
            if line.startswith("```"):
                in_block = not in_block
            elif in_block:
                block.append(line)
        for line in "\n".join(block).replace("\\\n", " ").splitlines():
            line = line.split("#", 1)[0].strip()
            match = re.match(r"^(?:\.venv/bin/)?fadejax\s+(.*)$", line)
            if match and "[" not in line and not re.search(r"\b(RUN_DIR|DIR|PATH)\b", line):  # not a synopsis line
                commands.append(shlex.split(match.group(1)))
    return commands
