"""The projections kept up to date while the API serves: in the background, or on demand."""

from __future__ import annotations

import logging
import threading

from mot.bootstrap import Services

log = logging.getLogger("mot.http")


class Projector:
    """Brings the projections up to date: in the background, or on demand (`refresh=true`).

    One at a time per process: the projection engine is single-threaded.
    """

    def __init__(self, services: Services, config_path: str | None = None) -> None:
        self.services = services
        self.config_path = config_path  # mot.toml: the overdue check's targets and thresholds
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def project(self) -> int:
        with self.lock:
            return self.services.projections.project()

    def start(self, every: float) -> None:
        self.stop.clear()
        self.thread = threading.Thread(target=self._run, args=(every,), name="mot-projector",
                                       daemon=True)
        self.thread.start()

    def _run(self, every: float) -> None:
        from mot.service.resilience import Retry

        # The store unreachable (a restart): one line, then retries with backoff.
        retry = Retry("mot serve's projector", self.services.unavailable, log.warning,
                      sleep=self.stop.wait)
        # Time makes requests overdue (SPEC §3.6).
        overdue = self.services.overdue_check(self.config_path, warn=log.warning)
        while not self.stop.is_set():
            try:
                overdue.maybe_run()
            except Exception:  # the alerts' check must not stop the projections
                log.exception("the overdue check failed; trying again in %.0f s", overdue.every_s)
            try:
                applied = self.project()
            except Exception as error:  # keep serving; say why, and try again a little later
                if retry.failed(error):
                    continue
                log.exception("projecting failed; retrying in %.1f s", every * 10)
                self.stop.wait(every * 10)
                continue
            retry.succeeded()
            if applied:
                overdue.changed()
            if not applied:
                self.stop.wait(every)

    def shutdown(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=30)
            self.thread = None
