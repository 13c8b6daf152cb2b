"""User-facing errors: every message names the problem and the fix."""


class EngineError(Exception):
    """An error the user can act on. The CLI prints it without a traceback and exits 2."""

    def __init__(self, problem: str, fix: str = ""):
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}\n  fix: {fix}" if fix else problem)


class InputError(EngineError):
    """Bad input data: a malformed file, an unreadable video, wrong shapes."""


class ModelError(EngineError):
    """A missing, incomplete or corrupt model directory or checkpoint."""


class Cancelled(Exception):
    """Raised inside a running job when the user asked to cancel."""
