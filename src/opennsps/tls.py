"""TLS on the gateway's own listener: the certificate and key from the configuration,
loaded again when either file changes (a renewed certificate needs no restart; new
connections get it, open ones keep theirs)."""

from __future__ import annotations

import ssl
import threading
from pathlib import Path

from opennsps.config import TlsConfig
from opennsps.logging import get_logger

log = get_logger("opennsps.tls")

VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


class TlsError(Exception):
    """The certificate or key cannot be used (the message says which file and why)."""


def server_context(config: TlsConfig) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = VERSIONS[config.minimum_version]
    load_certificate(context, config)
    return context


def load_certificate(context: ssl.SSLContext, config: TlsConfig) -> None:
    password = config.key_password.get_secret_value() if config.key_password else None
    for name, path in (("certificate", config.certificate), ("key", config.key)):
        if not Path(path).is_file():
            raise TlsError(f"server.tls.{name}: {path} is not a readable file")
    try:
        context.load_cert_chain(config.certificate, config.key, password)
    except (ssl.SSLError, OSError) as exc:
        raise TlsError(
            f"server.tls: the certificate {config.certificate} and key {config.key} cannot be "
            f"used together ({exc.strerror or exc}); both must be PEM, the key matching the "
            "certificate (and key_password set if the key is encrypted)"
        ) from None


class CertificateReloader:
    """Looks at the certificate's and key's modification times every `reload_seconds` and
    loads them again into the listener's context when they change."""

    def __init__(self, context: ssl.SSLContext, config: TlsConfig) -> None:
        self.context = context
        self.config = config
        self._seen = self._stamp()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tls-reloader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _stamp(self) -> tuple[float, float] | None:
        try:
            return (
                Path(self.config.certificate).stat().st_mtime,
                Path(self.config.key).stat().st_mtime,
            )
        except OSError:
            return None

    def _run(self) -> None:
        while not self._stop.wait(self.config.reload_seconds):
            self.check()

    def check(self) -> bool:
        """Load the files again if they changed; True when the new ones are in use."""
        stamp = self._stamp()
        if stamp is None or stamp == self._seen:
            return False
        try:
            load_certificate(self.context, self.config)
        except TlsError as exc:
            # Perhaps half written: keep serving the old one and look again next time.
            log.error("TLS certificate not reloaded; the previous one stays in use", error=str(exc))
            return False
        self._seen = stamp
        log.info("TLS certificate reloaded", certificate=self.config.certificate)
        return True
