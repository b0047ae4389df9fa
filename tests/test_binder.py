"""Binder installs what every tutorial needs (repo2docker reads only binder/, never the root pyproject)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).parent.parent

USES = {"to_dataframe": "pandas", "output_schema": "jsonschema"}
"""Calls in a tutorial that need a package the library imports lazily (from an extra)."""


def _requirement_names(specs: list[str]) -> set[str]:
    return {re.split(r"[\[<>=!~; ]", s, maxsplit=1)[0].strip().lower() for s in specs if s.strip()}


def _binder_packages() -> set[str]:
    extras = re.search(r'pip install [^\n]*"\.\[([^\]]*)\]"', (ROOT / "binder" / "postBuild").read_text(encoding="utf-8"))
    assert extras is not None, "binder/postBuild must pip install the package with its extras"
    optional = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    names: set[str] = set()
    for extra in extras.group(1).split(","):
        names |= _requirement_names(optional[extra.strip()])
    lines = (ROOT / "binder" / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return names | _requirement_names([line for line in lines if not line.startswith("#")])


def test_binder_installs_the_packages_the_tutorials_use() -> None:
    installed = _binder_packages()
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        code = "\n".join("".join(c["source"]) for c in json.loads(notebook.read_text(encoding="utf-8"))["cells"]
                         if c["cell_type"] == "code")
        needed = {package for call, package in USES.items() if call in code}
        assert needed <= installed, f"{notebook.name} needs {sorted(needed - installed)}, which binder/ does not install"
