"""Error hierarchy. Every user-facing failure is an EdgeDetError; the CLI prints one line and exits 2."""


class EdgeDetError(Exception):
    """Base class for all edgedet errors."""


class BackendUnavailableError(EdgeDetError):
    """A backend library is not installed (the message names the pip extra)."""

    def __init__(self, backend: str, extra: str, cause: BaseException | None = None):
        msg = f"backend '{backend}' is not available: install it with  pip install 'edgedet[{extra}]'"
        if cause is not None:
            msg += f"  ({type(cause).__name__}: {cause})"
        super().__init__(msg)
        self.backend = backend
        self.extra = extra


class ConversionError(EdgeDetError):
    """Export, conversion or engine build failed."""


class ArtifactError(EdgeDetError):
    """An artifact or its manifest is missing, corrupt, mismatched or built for another device."""


class InputError(EdgeDetError):
    """Bad user input: unknown model, unreadable image, wrong shape or dtype, bad option."""
