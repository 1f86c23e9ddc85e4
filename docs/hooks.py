"""MkDocs hooks (mkdocs.yml `hooks:`): pages generated at build time, so they cannot go stale.

- cli.md: the marker line is replaced by the help of every `edgedet` command, read from the argparse parsers.
- results.md: benchmarks/RESULTS.md, published as a page of the site (its result-folder links point into the
  repository, so they are shown as code)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from mkdocs.structure.files import File

REPO = Path(__file__).resolve().parents[1]
CLI_MARKER = "<!-- generated: edgedet command reference -->"


def cli_reference() -> str:
    os.environ["COLUMNS"] = "110"  # argparse wraps help to the terminal width: fix it for a stable page
    from edgedet.cli import COMMANDS, build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    out = ["```text", parser.format_help().rstrip(), "```"]
    for name in COMMANDS:
        out += [f"\n### edgedet {name}\n", "```text", sub.choices[name].format_help().rstrip(), "```"]
    return "\n".join(out)


def on_files(files, config):
    results = (REPO / "benchmarks" / "RESULTS.md").read_text()
    # links into the repository (result folders, files) are not pages of the site: show them as code
    results = re.sub(r"\[([^\]]+)\]\((?!https?://|#)([^)]+)\)", r"\1 (`\2`)", results)
    files.append(File.generated(config, "results.md", content=results))
    return files


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri == "cli.md":
        if CLI_MARKER not in markdown:
            raise ValueError(f"docs/cli.md lost its marker line {CLI_MARKER}")
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    return markdown
