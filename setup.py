"""The build step that ships the served model inside the package; everything else is in pyproject.toml.

The newest complete version under models/mnist-cnn is copied, serving files only (metadata.json and the LiteRT
models, not model.keras), to watcher/model/shipped/mnist-cnn/N: into the wheel, or beside the source for an
editable install, which serves the package from this tree. The sdist carries that version's files under models/,
so a wheel built from it ships the same one.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist
from setuptools.errors import FileError

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # the version rules below are the package's own, read from this tree

from watcher.model.versions import SHIPPED_MODEL, newest_complete, serving_files  # noqa: E402

MODELS = ROOT / "models" / SHIPPED_MODEL.name  # the same folder name, so rows read `mnist-cnn/N` either way


def served_files() -> list[Path]:
    """The serving files of the version a checkout serves: the newest complete one under models/."""
    version = newest_complete(MODELS) if MODELS.is_dir() else None
    if version is None:
        raise FileError(f"{MODELS}: no complete model version to ship")
    return serving_files(version)


def ship_model(package_root: Path) -> None:
    """Put the served version's files under package_root's watcher/model/shipped, replacing any older version."""
    files = served_files()
    shipped = package_root / SHIPPED_MODEL.relative_to(ROOT)
    shutil.rmtree(shipped.parent, ignore_errors=True)
    target = shipped / files[0].parent.name
    target.mkdir(parents=True)
    for file in files:
        shutil.copyfile(file, target / file.name)


class BuildWithModel(build_py):
    def run(self) -> None:
        super().run()
        ship_model(ROOT if self.editable_mode else Path(self.build_lib))


class SdistWithModel(sdist):
    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, [*files, *(str(file.relative_to(ROOT)) for file in served_files())])


setup(cmdclass={"build_py": BuildWithModel, "sdist": SdistWithModel})
