"""One-off studies behind benchmarks/RESULTS.md: run from a checkout (python -m benchmarks.studies.<name>), not
packaged. What `edgedet bench` runs lives one level up (harness, report, stats, environment, images)."""


def write_checks(path, summary: dict) -> int:
    """Write a study's summary.json (its `checks`: name -> passed), print PASS/FAIL per check; exit 1 if any failed."""
    import json
    from pathlib import Path

    Path(path).write_text(json.dumps(summary, indent=2) + "\n")
    checks = summary["checks"]
    for k, v in checks.items():
        print(f"{'PASS' if v else 'FAIL'} {k}")
    return 0 if all(checks.values()) else 1
