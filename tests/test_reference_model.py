"""The committed trained reference model keeps its accuracy through every CPU backend.

The validation split is regenerated here from its seed (the synthetic generator is deterministic)."""
import pytest

from edgedet.benchmarks.reference_model import REFERENCE, evaluate_backends
from edgedet.data.synthetic import generate

pytestmark = pytest.mark.skipif(not REFERENCE.is_file(), reason="reference weights not committed")


@pytest.fixture(scope="module")
def val_split(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("shapes"), "val", 200, size=256, seed=0)


@pytest.fixture(scope="module")
def results(val_split):
    return evaluate_backends(str(REFERENCE), str(val_split))


def test_same_map_on_every_backend(results):
    aps = [r["AP"] for r in results.values()]
    assert max(aps) - min(aps) <= 0.005, results


def test_reference_map_recorded(results):
    import json
    from pathlib import Path
    recorded = json.loads((Path(__file__).resolve().parents[1] / "benchmarks/results/reference_model.json").read_text())
    assert results["torch"]["AP"] == pytest.approx(recorded["results"]["torch"]["AP"], abs=0.005)
