"""One-off studies behind benchmarks/RESULTS.md: run from a checkout (python -m benchmarks.studies.<name>), not
packaged. What `edgedet bench` runs lives one level up (harness, report, stats, environment, images)."""
