"""The node scenario's offline artifacts: what converge installed Kubernetes from."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

# The artifacts of the Kubernetes version in versions.yml (the one file that pins it), as converge.yml uses them.
KUBERNETES = yaml.safe_load((Path(__file__).resolve().parents[3] / "versions.yml").read_text())["kubernetes"]
CACHE = Path(os.environ.get("ARCHIPELAGO_CACHE", "/var/cache/archipelago"))
ARTIFACTS_DIR = Path(os.environ.get("ARCHIPELAGO_ARTIFACTS_DIR", CACHE / "artifacts" / f"kubernetes-{KUBERNETES}"))
REQUIRE_LAB = os.environ.get("ARCHIPELAGO_REQUIRE_LAB") == "1"


@pytest.fixture
def artifacts() -> Path:
    """The offline artifacts directory; a skip without it (converge installed no Kubernetes), or a failure under
    ARCHIPELAGO_REQUIRE_LAB=1 (make test builds the artifacts first, so their absence is a fault there)."""
    if not (ARTIFACTS_DIR / "VERSIONS").is_file():
        message = f"no offline artifacts at {ARTIFACTS_DIR} (make artifacts); converge installed no Kubernetes"
        if REQUIRE_LAB:
            pytest.fail(f"{message} (ARCHIPELAGO_REQUIRE_LAB=1 turns this skip into a failure)")
        pytest.skip(message)
    return ARTIFACTS_DIR
