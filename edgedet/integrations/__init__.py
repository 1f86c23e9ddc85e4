"""Integrations with distributed engines (Ray Data, Ray Serve) and servers (Triton). They sit on top of the
runtimes and converters; each imports its engine lazily and names the pip extra when it is missing."""
