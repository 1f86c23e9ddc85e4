"""The README's quickstart runs as written: each line of its marked block, in order, in a fresh folder where
`tests/assets` is the checkout's, with this environment's `edgedet` and `python` first on PATH."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def quickstart() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = re.search(r"<!-- quickstart:begin -->\s*```bash\n(.*?)```\s*<!-- quickstart:end -->", text, re.S)
    assert block, "README.md lost its quickstart markers"
    lines = [line.split("  #")[0].strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_the_quickstart_has_five_commands():
    assert len(quickstart()) == 5


def test_the_quickstart_runs_as_written(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "assets").symlink_to(REPO / "tests" / "assets")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "CI": "true"}
    outputs = []
    for line in quickstart():
        r = subprocess.run(shlex.split(line), capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)
        assert r.returncode == 0, f"$ {line}\n{r.stdout[-1500:]}\n{r.stderr[-3000:]}"
        outputs.append(r.stdout)
    assert (tmp_path / "models" / "d0.xml").is_file() and (tmp_path / "models" / "d0.xml.json").is_file()
    assert len(list((tmp_path / "annotated").glob("*.jpg"))) == 16
    # the reference model gives real detections and real AP on its own kind of data
    ap = float(re.search(r"AP (\d\.\d+)", outputs[3]).group(1))
    assert ap > 0.5, outputs[3]
    assert "openvino" in outputs[4] and "onnxruntime" in outputs[4]
    assert json.loads((tmp_path / "shapes" / "val.json").read_text())["annotations"]
