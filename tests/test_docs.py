"""The README, the front door, links only to files that exist (the docs site's own links
are checked by `mkdocs build --strict` in scripts/test.sh)."""

import re

from readme import ROOT, documented_pages


def test_every_relative_link_of_the_readme_resolves():
    text = (ROOT / "README.md").read_text()
    targets = [t.split("#", 1)[0] for t in re.findall(r"\]\(([^)\s]+)\)", text) if "://" not in t]
    assert targets, "the README links to the documentation"
    missing = [t for t in targets if t and not (ROOT / t).exists()]
    assert missing == []


def test_the_readme_links_every_page_of_the_user_guide():
    text = (ROOT / "README.md").read_text()
    pages = [p.relative_to(ROOT).as_posix() for p in documented_pages()[1:]]
    assert [p for p in pages if f"]({p})" not in text] == []
