"""The error hierarchy. Each class carries the exit code of CONTRACT.md section 6.

Core code raises these; `cli.app.main` is the one place that turns them into exit codes.
"""

from __future__ import annotations


class ResidencyError(Exception):
    """A failure the user can act on: printed as one line, never as a traceback."""

    exit_code: int = 1
    # Tasks that were started before the failure and are left running (named in the hint).
    task_ids: list[str] = []  # noqa: RUF012 - replaced per instance, never mutated

    def __init__(
        self, message: str, *, hint: str | None = None, exit_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class JobFailedError(ResidencyError):
    """The job ran and its essential container exited non-zero."""

    exit_code = 1


class UsageError(ResidencyError):
    """A bad option, an unknown workload or location: nothing was changed."""

    exit_code = 2


class ConfigError(UsageError):
    """The residency map is invalid; carries every problem found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__(problems[0] if len(problems) == 1 else "\n".join(self.problems))


class RefusedError(ResidencyError):
    """No compliant host, an ECS placement failure, or a relabel that would break residency."""

    exit_code = 3


class ViolationError(ResidencyError):
    """A task was (or is) on a host outside its allowed locations."""

    exit_code = 4


class NotCompletedError(ResidencyError):
    """The task never ran to completion (failed to start, host lost, image error)."""

    exit_code = 5


class WaitTimeoutError(ResidencyError):
    """Timed out waiting; the task is left running."""

    exit_code = 6


class AwsError(ResidencyError):
    """AWS failed after retries: credentials, permissions, throttling, not found, unreachable."""

    exit_code = 7


class OutputClosed(ResidencyError):
    """stdout was closed by its reader (`residency logs ... | head`): stop quietly."""

    exit_code = 0


class InterruptedByUser(ResidencyError):
    """Ctrl-C; a dispatched task is left running."""

    exit_code = 130
