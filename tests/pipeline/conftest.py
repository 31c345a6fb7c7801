from __future__ import annotations

from pathlib import Path

import pytest

from opennsps.sandbox.dataset import generate


@pytest.fixture(scope="session")
def dataset_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pipeline-dataset") / "sandbox.db"
    generate(path, 200, seed=7)
    return path


@pytest.fixture
def dataset_file(dataset_template: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "sandbox.db"
    copy.write_bytes(dataset_template.read_bytes())
    return copy
