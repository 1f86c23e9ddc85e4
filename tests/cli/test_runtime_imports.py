"""The whole command line (every command's parser and --help) loads with only what a runtime-only install has:
the standard library, edgedet's install_requires and the runtime backends. A module that imports onnx, torch or a
converter's dependency at the top breaks `edgedet` itself there, not only the command that needs it; the wheel
test (tests/test_packaging.py) finds that in two minutes, this finds it in two seconds."""

import subprocess
import sys
import textwrap

from edgedet.cli import COMMANDS

# install_requires (setup.py) and the runtime backends' modules
RUNTIME_ONLY = {"edgedet", "numpy", "cv2", "tqdm", "onnxruntime", "openvino"}

BLOCK = textwrap.dedent("""
    import sys
    ALLOWED = set(sys.stdlib_module_names) | {allowed!r}
    class _RuntimeOnly:
        def find_spec(self, name, path=None, target=None):
            top = name.split(".")[0]
            if top not in ALLOWED and not top.startswith("_"):
                raise ImportError(f"{{name}} is not in a runtime-only install")
            return None
    sys.meta_path.insert(0, _RuntimeOnly())
""")


def test_every_command_parses_with_runtime_dependencies_only(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(
        BLOCK.format(allowed=RUNTIME_ONLY)
        + textwrap.dedent(f"""
        import contextlib, io
        from edgedet.cli import build_parser
        parser = build_parser()
        for command in {list(COMMANDS)!r}:
            with contextlib.redirect_stdout(io.StringIO()):
                try:
                    parser.parse_args([command, "--help"])
                except SystemExit as e:
                    assert e.code == 0, command
        print("ok")
        """)
    )
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-3000:]
