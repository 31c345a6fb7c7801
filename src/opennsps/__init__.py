"""OpenNSPS: a self-hosted provisioning gateway for PortaBilling ESPF events."""

from functools import cache


@cache
def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("opennsps")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def __getattr__(name: str) -> str:
    # Looked up when first asked for: reading the package metadata costs every command's
    # start-up otherwise (bench/cli).
    if name == "__version__":
        return _installed_version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
