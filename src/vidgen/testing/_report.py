"""The conformance report: one result per named check."""

from __future__ import annotations

import enum
from typing import Any

import attrs


class CheckStatus(enum.StrEnum):
    """How a check ended."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@attrs.frozen
class CheckResult:
    """The outcome of one check: its name, status and a message saying what was seen."""

    name: str
    status: CheckStatus
    message: str = ""
    duration_s: float = 0.0
    details: str | None = None  # a traceback summary when the check raised unexpectedly

    @property
    def passed(self) -> bool:
        return self.status is CheckStatus.PASSED

    @property
    def failed(self) -> bool:
        return self.status is CheckStatus.FAILED

    @property
    def skipped(self) -> bool:
        return self.status is CheckStatus.SKIPPED

    def __str__(self) -> str:
        line = f"[{self.status.value:7}] {self.name}"
        if self.message:
            line += f": {self.message}"
        return line

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status.value, "message": self.message,
                "duration_s": round(self.duration_s, 4), "details": self.details}


class ConformanceError(AssertionError):
    """Raised by ``ConformanceReport.raise_for_failures`` and by the pytest form when a
    check failed. An ``AssertionError``, so test runners report it as a test failure."""

    def __init__(self, message: str, failures: tuple[CheckResult, ...] = ()) -> None:
        super().__init__(message)
        self.failures = failures


@attrs.frozen
class ConformanceReport:
    """Every check run against one backend, in the suite's order."""

    backend: str  # the backend's name (or what was given, if it could not be built)
    checks: tuple[CheckResult, ...]

    @property
    def ok(self) -> bool:
        """True when no check failed (skipped checks do not count against it)."""
        return not self.failures

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if c.failed)

    @property
    def passed(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if c.passed)

    @property
    def skipped(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if c.skipped)

    def __getitem__(self, name: str) -> CheckResult:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(f"no check named {name!r} in this report "
                       f"(ran: {', '.join(c.name for c in self.checks)})")

    def __contains__(self, name: object) -> bool:
        return any(c.name == name for c in self.checks)

    def summary(self) -> str:
        """A multi-line, human-readable report."""
        head = (f"vidgen conformance for backend {self.backend!r}: {len(self.passed)} passed, "
                f"{len(self.failures)} failed, {len(self.skipped)} skipped")
        return "\n".join([head, *(f"  {c}" for c in self.checks)])

    def __str__(self) -> str:
        return self.summary()

    def raise_for_failures(self) -> None:
        """Raise ``ConformanceError`` listing every failed check; return if none failed."""
        failures = self.failures
        if failures:
            lines = [f"backend {self.backend!r} failed {len(failures)} conformance "
                     f"check{'s' if len(failures) > 1 else ''}:"]
            lines += [f"  {c}" for c in failures]
            raise ConformanceError("\n".join(lines), failures)

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "ok": self.ok,
                "checks": [c.to_dict() for c in self.checks]}
