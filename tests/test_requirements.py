"""The dependency lock: requirements.in names what the app uses, requirements.txt pins everything the set-up installs."""

import re
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
UPDATE = "update the lock: uv pip compile requirements.in --universal --python-version 3.11 -o requirements.txt"


def requirements(path: Path) -> list[Requirement]:
    """A requirements file's lines as Requirements (comments, blank lines and indented `# via` notes left out)."""
    lines = (re.sub(r"\s+#.*$", "", line).strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith(("#", "-"))]


def pinned_version(requirement: Requirement) -> str | None:
    specifiers = list(requirement.specifier)
    return specifiers[0].version if len(specifiers) == 1 and specifiers[0].operator == "==" else None


def lock() -> list[Requirement]:
    return requirements(ROOT / "requirements.txt")


def test_every_line_of_the_lock_pins_one_version():
    for name in ("requirements.txt", "pre-requirements.txt"):  # the packages, and the pip that installs them
        unpinned = [str(r) for r in requirements(ROOT / name) if pinned_version(r) is None]
        assert not unpinned, f"{name} must pin every package with ==: {unpinned}"
    assert not [line for line in (ROOT / "requirements.txt").read_text().splitlines() if line.startswith("-")], \
        "requirements.txt names no index or option: the set-up uses the user's own pip configuration"


def test_every_direct_requirement_is_in_the_lock_at_its_version():
    locked: dict[str, list[Requirement]] = {}
    for requirement in lock():
        locked.setdefault(canonicalize_name(requirement.name), []).append(requirement)
    for direct in requirements(ROOT / "requirements.in"):
        candidates = locked.get(canonicalize_name(direct.name))
        assert candidates, f"{direct.name} is in requirements.in but not in requirements.txt: {UPDATE}"
        versions = {pinned_version(r) for r in candidates}
        assert all(direct.specifier.contains(v, prereleases=True) for v in versions), \
            f"requirements.in asks for {direct}, requirements.txt pins {sorted(versions)}: {UPDATE}"


def test_the_lock_has_no_package_that_nothing_asks_for():
    """uv writes who asks for each package (`# via`); a package with no such line was left behind by hand."""
    text = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])  # after uv's two header lines: one block per package
    orphans = [block.split("\n")[0] for block in blocks if "# via" not in block]
    assert not orphans, f"in requirements.txt without a reason: {orphans}; {UPDATE}"


def test_this_environment_has_the_locked_versions():
    """What runs the tests is what a fresh install gets: a package at another version here means the venv drifted
    (pip install -r requirements.txt puts it back)."""
    environment = default_environment()
    drifted, missing = [], []
    for requirement in lock():
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue  # another platform's or Python's package
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            missing.append(requirement.name)
            continue
        locked = pinned_version(requirement)
        if Version(installed).public != Version(locked).public:  # torch's local label (+cu130) aside
            drifted.append(f"{requirement.name} {installed} (locked {locked})")
    assert not missing and not drifted, f"not installed: {missing}; other versions: {drifted}; run pip install -r requirements.txt"
