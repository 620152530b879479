"""The README's ``fadejax`` command lines, for the tests that parse and run them."""

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[list[str]]:
    """Every ``fadejax ...`` command line in the README's code blocks, as argv after ``fadejax``."""
    commands, block, in_block = [], [], False
    for line in (ROOT / "README.md").read_text().splitlines():
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
