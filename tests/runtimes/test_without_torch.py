"""A runtime needs only an artifact and its manifest: Detector.load and `edgedet bench --artifact` work in a
process where importing torch fails (params and FLOPs come from the manifest, recorded at export)."""

import json
import subprocess
import sys
import textwrap

BLOCK_TORCH = textwrap.dedent("""
    import sys
    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch.") or name in ("timm", "effdet", "torchvision"):
                raise ImportError(f"{name} is blocked in this test")
            return None
    sys.meta_path.insert(0, _NoTorch())
""")


def _run(code: str, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(BLOCK_TORCH + textwrap.dedent(code))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path)


def test_detector_and_bench_without_torch(artifacts, tmp_path):
    xml, onnx = artifacts["openvino"], artifacts["onnx"]
    r = _run(
        f"""
        import numpy as np
        try:
            import torch
            raise SystemExit("torch imported")
        except ImportError:
            pass
        from edgedet.runtimes import Detector
        for p in ({str(xml)!r}, {str(onnx)!r}):
            with Detector.load(p) as det:
                det(np.zeros((64, 80, 3), np.uint8))
        from edgedet.cli import main
        raise SystemExit(main(["bench", "--artifact", {str(xml)!r}, "--iters", "3", "--warmup", "1", "--json"]))
    """,
        tmp_path,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(r.stdout)
    row = report["rows"][0]
    assert row["params"] > 0 and row["gflops"] > 0 and row["backend"] == "openvino"
