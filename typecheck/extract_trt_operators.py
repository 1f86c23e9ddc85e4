"""Extract onnx-tensorrt's operator support matrix (docs/operators.md) per TensorRT release into
converters/data/trt_operators.json, the data `edgedet check --backend trt --trt-version X` reads.

Run by hand when a TensorRT release is added (a dev tool, not packaged); it rewrites the JSON, which is committed:

    git clone https://github.com/onnx/onnx-tensorrt /tmp/onnx-tensorrt
    python typecheck/extract_trt_operators.py /tmp/onnx-tensorrt [--files DIR]

Which commit is which release: NVIDIA/TensorRT pins onnx-tensorrt as its `parsers/onnx` submodule, so each release
tag names the commit (`git ls-tree vX parsers/onnx`). RELEASES below lists them. `--files DIR` reads DIR/<commit>.md
instead of `git show` where a clone lacks a commit (a shallow or old mirror).

What is extracted, per release: the opset range of the header, each operator's Supported flag, its Supported Types,
and its Restrictions, the sentences of which are turned into rules the checker evaluates (RULES below: an input
that must be an initializer, an attribute's allowed values, a maximum value, an unused output, types). A sentence no
pattern matches is kept as a note. HEADER_RULES adds what NvInfer.h states and the table does not (TopK's K).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "converters" / "data" / "trt_operators.json"
# table key -> (TensorRT release, onnx-tensorrt commit = NVIDIA/TensorRT's parsers/onnx submodule at that tag)
RELEASES = {
    "8.6": ("8.6.1", "6ba67d3428e05f690145373ca87fb8d32f98df45"),
    "10.0": ("10.0.1", "eb43908b02a296ea0594432f06e9d3fac288d672"),
    "10.1": ("10.1.0", "96e781103cfc4adf4a6bb557e94bac8e693f6f4c"),
    "10.16": ("10.16", "6bde6596eca84abf9afe9b4d21c18c32800fd3ad"),
    "11.1": ("11.1", "7c51a63a719180eb5160c874c111746f3fb46a6b"),
}
TICKED = re.compile(r"`([^`]+)`")
# sentence pattern -> rule builder(match): the rules trt_check evaluates
RULES = [
    (
        re.compile(
            r"^`(\w+)` (?:input )?must be (?:an initializer|a constant tensor|a build-time constant|resolvable "
            r"to a constant)"
        ),
        lambda m: {"rule": "initializer", "input": m.group(1)},
    ),
    (
        re.compile(r"^`(\w+)` must be an initializer and evaluate to False"),
        lambda m: {"rule": "initializer", "input": m.group(1)},
    ),
    (
        re.compile(r"^`(\w+)` and `(\w+)` must be an initializer"),
        lambda m: [{"rule": "initializer", "input": m.group(1)}, {"rule": "initializer", "input": m.group(2)}],
    ),
    (
        re.compile(r"^`(\w+)` (?:attribute )?must be (\d+)$"),
        lambda m: {"rule": "attr_equals", "attr": m.group(1), "value": int(m.group(2))},
    ),
    (
        re.compile(r"^`(\w+)` input must be less than (\d+)$"),
        lambda m: {"rule": "max_value", "input": m.group(1), "max": int(m.group(2)) - 1},
    ),
    (re.compile(r"^`(\w+)` must be empty or all ones$"), lambda m: {"rule": "attr_all_ones", "attr": m.group(1)}),
    (re.compile(r"`Indices` output tensor unsupported$"), lambda m: {"rule": "output_unused", "output": 1}),
    (
        re.compile(r"^Supported resize transformation modes: (.*)$"),
        lambda m: {"rule": "attr_in", "attr": "coordinate_transformation_mode", "values": TICKED.findall(m.group(1))},
    ),
    (
        re.compile(r"^Supported resize modes: (.*)$"),
        lambda m: {"rule": "attr_in", "attr": "mode", "values": TICKED.findall(m.group(1))},
    ),
    (
        re.compile(r"^Supported nearest modes: (.*)$"),
        lambda m: {"rule": "attr_in", "attr": "nearest_mode", "values": TICKED.findall(m.group(1))},
    ),
    (
        re.compile(r"^Supported aspect ratio policy: (.*)$"),
        lambda m: {"rule": "attr_in", "attr": "keep_aspect_ratio_policy", "values": TICKED.findall(m.group(1))},
    ),
    (
        re.compile(r"^Antialiasing is not supported$"),
        lambda m: {"rule": "attr_equals", "attr": "antialias", "value": 0},
    ),
    # Q/DQ zero points are checked by trt_check's Q/DQ pass (signed INT8, all zero)
    (re.compile(r"^`[xy]_zero_point` must be (?:zero|0)$"), lambda m: {"rule": "qdq_symmetric"}),
]
# Stated in NvInfer.h (ITopKLayer::setK: "Currently only values of K up to 3840 are supported", 8.6.1 to 11.1) and
# applied where the release's table states no K limit (8.6, 10.0)
HEADER_RULES = {"TopK": {"rule": "max_value", "input": "K", "max": 3840, "source": "NvInfer.h ITopKLayer"}}
# ops whose Supported Types trt_check verifies (issue 24: ConstantOfShape/NonZero types on 8.6): op -> where the type is
TYPED = {"ConstantOfShape": "value", "NonZero": "input0"}
TYPE_FIXES = {"INF64": "INT64"}  # a typo in the 10.1 table (ConstantOfShape)


def _sentences(text: str) -> list[str]:
    text = text.replace("<br />", ". ").replace("\\.", ".")
    parts = re.split(r"(?<=[.])\s+(?=[A-Z`])", text)
    return [p.strip().rstrip(".").strip() for p in parts if p.strip().rstrip(".").strip()]


def parse(text: str) -> dict:
    header = re.search(r"inclusive range of opset (\d+) to opset (\d+)", text)
    up_to = re.search(r"up to Opset (\d+)", text, re.IGNORECASE)
    opset = [int(header.group(1)), int(header.group(2))] if header else [None, int(up_to.group(1))]
    supported, unsupported = {}, []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().split("|")]
        if len(cells) < 3 or not re.fullmatch(r"[A-Z][A-Za-z0-9]*", cells[1]) or cells[1] == "Operator":
            continue
        op, flag = cells[1], cells[2]
        if not flag.startswith("Y"):
            unsupported.append(op)
            continue
        types = [TYPE_FIXES.get(t.strip(), t.strip()) for t in (cells[3] if len(cells) > 3 else "").split(",")]
        types = [t for t in types if t]
        rules, notes = [], []
        for sentence in _sentences(cells[4] if len(cells) > 4 else ""):
            for pattern, build in RULES:
                m = pattern.search(sentence)
                if m:
                    built = build(m)
                    rules += [{**r, "text": sentence} for r in (built if isinstance(built, list) else [built])]
                    break
            else:
                notes.append(sentence)
        if op in HEADER_RULES and not any(r.get("input") == "K" for r in rules):
            rules.append({**HEADER_RULES[op], "text": f"K up to {HEADER_RULES[op]['max']}"})
        if op in TYPED:
            rules.append({"rule": "types", "where": TYPED[op], "types": types, "text": f"types {', '.join(types)}"})
        entry = {"types": types, "rules": rules}
        if notes:
            entry["notes"] = notes
        if flag != "Y":
            entry["flag"] = flag  # e.g. "Y [EXPERIMENTAL]"
        supported[op] = entry
    return {"opset": opset, "supported": supported, "unsupported": sorted(unsupported)}


def read(repo: Path, commit: str, files: Path | None) -> str:
    if files is not None and (files / f"{commit}.md").is_file():
        return (files / f"{commit}.md").read_text()
    return subprocess.run(
        ["git", "-C", str(repo), "show", f"{commit}:docs/operators.md"], check=True, capture_output=True, text=True
    ).stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("repo", type=Path, help="a clone of github.com/onnx/onnx-tensorrt")
    ap.add_argument("--files", type=Path, help="folder of <commit>.md files used before `git show`")
    a = ap.parse_args()
    versions = {}
    for key, (release, commit) in RELEASES.items():
        versions[key] = {"release": release, "onnx_tensorrt_commit": commit, **parse(read(a.repo, commit, a.files))}
        print(key, release, commit[:10], len(versions[key]["supported"]), "supported", versions[key]["opset"])
    data = {
        "_source": {
            "repository": "onnx/onnx-tensorrt",
            "file": "docs/operators.md",
            "commits": "NVIDIA/TensorRT's parsers/onnx submodule at each release tag",
            "generator": "typecheck/extract_trt_operators.py",
            "header_rules": "TopK K up to 3840 from NvInfer.h (ITopKLayer) where the table states no limit",
        },
        "versions": versions,
    }
    OUT.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
