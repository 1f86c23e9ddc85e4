"""Which pip extra installs a missing module: read from the installed package's own metadata (its Requires-Dist
lines, written from setup.py's EXTRAS), so a runtime-only install can name what a command needs in one line."""

from __future__ import annotations

import re
from functools import lru_cache

# import names that differ from their distribution's name
_DISTRIBUTION_OF = {
    "skimage": "scikit-image",
    "cv2": "opencv-python-headless",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "tensorrt": "tensorrt-cu12",
    "cuda": "cuda-python",
}
# extras that gather others (cpu, dev, ...): a missing module is named by the smallest extra that brings it
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?[^;]*;\s*extra\s*==\s*['\"]([^'\"]+)['\"]")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@lru_cache(maxsize=1)
def _extras() -> dict[str, set[str]]:
    """extra -> the distributions it requires, from the installed edgedet's metadata ({} from a bare checkout)."""
    from importlib import metadata

    try:
        lines = metadata.requires("edgedet") or []
    except metadata.PackageNotFoundError:
        return {}
    out: dict[str, set[str]] = {}
    for line in lines:
        m = _REQUIREMENT.match(line)
        if m:
            out.setdefault(m.group(2), set()).add(_normalise(m.group(1)))
    return out


def extra_for(module: str) -> str | None:
    """The smallest pip extra of edgedet that installs the top-level module `module` (None if no extra does)."""
    top = module.split(".")[0]
    dist = _normalise(_DISTRIBUTION_OF.get(top, top))
    holders = [(len(reqs), extra) for extra, reqs in _extras().items() if dist in reqs]
    return min(holders)[1] if holders else None


def missing_module_message(exc: ModuleNotFoundError) -> str:
    """One line for a ModuleNotFoundError: the module, and the extra that installs it where edgedet has one."""
    name = exc.name or str(exc)
    extra = extra_for(name)
    if extra is None:
        return f"the Python module '{name}' is not installed ({exc})"
    return f"this needs '{name.split('.')[0]}', which is not installed: pip install 'edgedet[{extra}]'"
