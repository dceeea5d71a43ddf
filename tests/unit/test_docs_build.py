"""The manual (docs/ + mkdocs.yml) builds strictly, and what it tells people to type exists.

A broken link, a page left out of the nav, a `python -m flows.x` that is no module, or a setting name
that no settings class reads all send a newcomer down a dead end; these tests catch them in `make test`.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from canvas_tasks.sis_import.settings import CanvasSettings, CanvasSourceSettings
from destinations.config import DestinationConfig
from encoura_tasks.api.settings import EncouraSettings
from encoura_tasks.export.settings import RunSettings
from encoura_tasks.upload.settings import NamedUploadSource, UploadSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCS = REPO_ROOT / "docs"

# Names announced by open issues and built in other branches but not merged yet. The docs leave a heading
# for each; once the code that reads a name is merged, the name is found in the code and leaves this list.
# (Empty now: LOG_FILE, LOG_LEVEL and UPLOAD_SOURCES__<NAME>__* are all read by the code.)
PENDING_SETTINGS: set[str] = set()
PENDING_PREFIXES: tuple[str, ...] = ()
PENDING_MODULES: set[str] = set()

# Our settings namespaces: any upper-case word starting with one of these in the docs must be a setting.
# (The old scripts' variables in docs/migration.md, Prefect's and the OS's variables fall outside them.)
_SETTING_WORD = re.compile(
    r"\b((?:ENCOURA|UPLOAD|CANVAS)_[A-Z0-9_]*[A-Z0-9]|DESTINATIONS__[A-Z0-9_<>]+__[A-Z_]*[A-Z]"
    r"|STATE_DIR|LEDGER_URL|MAX_PARALLEL_FILES|TASK_RETRIES|TASK_RETRY_DELAY_SECONDS|CLAIM_TTL_SECONDS"
    r"|LOG_FILE|LOG_LEVEL)\b"
)
_PYTHON_M = re.compile(r"python -m ([A-Za-z_]\w*(?:\.\w+)*)")


def _doc_texts() -> dict[str, str]:
    pages = {str(p.relative_to(REPO_ROOT)): p.read_text(encoding="utf-8") for p in sorted(DOCS.rglob("*.md"))}
    pages["README.md"] = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    return pages


def _env_names(model: type, prefix: str) -> set[str]:
    names = set()
    for name, field in model.model_fields.items():  # type: ignore[attr-defined]
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        if choices:
            names.update(str(c).upper() for c in choices if str(c).isupper())
        else:
            names.add(prefix + name.upper())
    return names


def _known_settings() -> set[str]:
    known = set()
    known |= _env_names(EncouraSettings, "ENCOURA_")
    known |= _env_names(UploadSettings, "UPLOAD_")
    known |= _env_names(CanvasSettings, "CANVAS_")
    known |= _env_names(CanvasSourceSettings, "CANVAS_SOURCE_")
    known |= {n for n in _env_names(RunSettings, "") if n != "DESTINATIONS"}
    known |= {"DESTINATIONS__<NAME>__" + f.upper() for f in DestinationConfig.model_fields}
    known |= {"UPLOAD_SOURCES__<NAME>__" + f.upper() for f in NamedUploadSource.model_fields}
    return known


def _literal_in_code(name: str) -> bool:
    """Names read straight from the environment (ENCOURA_SLATE_CONFIG, CANVAS_SIS_SOURCE...) are in the code."""
    sources = [REPO_ROOT / "prefect.yaml"]
    for package in ("flows", "encoura_tasks", "canvas_tasks", "destinations", "ledger", "common"):
        sources.extend((REPO_ROOT / package).rglob("*.py"))
    return any(name in path.read_text(encoding="utf-8") for path in sources if path.is_file())


def _normalise(word: str) -> str:
    """DESTINATIONS__SLATE__URL -> DESTINATIONS__<NAME>__URL (UPLOAD_SOURCES__ alike): any name is fine."""
    match = re.fullmatch(r"(DESTINATIONS|UPLOAD_SOURCES)__[A-Z0-9_<>]+?__([A-Z_]+)", word)
    return f"{match.group(1)}__<NAME>__{match.group(2)}" if match else word


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert (tmp_path / "site" / "architecture" / "index.html").is_file()
    assert (tmp_path / "site" / "migration" / "index.html").is_file()


def test_readme_keeps_the_two_commands() -> None:
    # CI's hook and newcomers look for these two exact commands on the front page.
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert "make test" in readme
    assert "make demo" in readme


def test_every_documented_python_module_exists() -> None:
    missing = []
    for page, text in _doc_texts().items():
        for module in sorted(set(_PYTHON_M.findall(text))):
            if module in PENDING_MODULES or module in {"pip", "venv"}:
                continue
            try:
                found = importlib.util.find_spec(module) is not None
            except ModuleNotFoundError:  # a parent package that does not exist
                found = False
            if not found:
                missing.append(f"{page}: python -m {module}")
    assert not missing, "documented but not importable:\n" + "\n".join(missing)


def test_every_documented_setting_exists() -> None:
    known = _known_settings()
    unknown = []
    for page, text in _doc_texts().items():
        for word in sorted(set(_SETTING_WORD.findall(text))):
            name = _normalise(word)
            if name in known or name in PENDING_SETTINGS or name.startswith(PENDING_PREFIXES):
                continue
            if _literal_in_code(word):
                continue
            unknown.append(f"{page}: {word}")
    assert not unknown, "documented settings no settings class reads:\n" + "\n".join(unknown)


def test_the_settings_check_catches_a_made_up_name() -> None:
    # The check above must be able to fail: a name no class reads is not in the known set.
    known = _known_settings()
    assert "ENCOURA_API_KEY" in known
    assert "DESTINATIONS__<NAME>__HOST_KEY" in known
    assert "UPLOAD_SOURCES__<NAME>__PRODUCT_TYPE" in known
    assert _normalise("UPLOAD_SOURCES__SIS__HOST_KEY") == "UPLOAD_SOURCES__<NAME>__HOST_KEY"
    assert "UPLOAD_SOURCES__<NAME>__API_TOKEN" not in known
    assert "STATE_DIR" in known
    assert "ENCOURA_API_TOKEN" not in known
    assert not _literal_in_code("ENCOURA_API_TOKEN")


def _slate_masks() -> list[str]:
    text = (DOCS / "slate.md").read_text(encoding="utf-8")
    section = text.split("## Choosing a path template", 1)[1]
    masks = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`{"):
            masks.append(cells[2].split(",")[-1].strip().strip("`"))
    return masks


@pytest.mark.parametrize("mask", _slate_masks() or ["<no masks found>"])
def test_slate_mask_examples_follow_technolutions_rule(mask: str) -> None:
    # Technolutions: a mask needs a prefix or suffix with no spaces or special characters except underscores.
    assert "*" in mask, mask
    prefix, _, rest = mask.partition("*")
    suffix = rest.rsplit("*", 1)[-1]
    suffix_word = suffix.removesuffix(".csv")
    ok = [part for part in (prefix, suffix_word) if part and re.fullmatch(r"[A-Za-z0-9_]+", part)]
    assert ok, f"mask {mask!r} needs a prefix or suffix of letters, digits and underscores only"
    assert "-" not in prefix and "-" not in suffix, mask


def test_the_module_check_catches_a_made_up_module() -> None:
    assert _PYTHON_M.findall("run `python -m flows.no_such_flow --dry-run`, or python -m flows...") == [
        "flows.no_such_flow",
        "flows",
    ]
    assert importlib.util.find_spec("flows.no_such_flow") is None
