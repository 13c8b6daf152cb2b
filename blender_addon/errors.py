"""The add-on's error types, in one place: the engine's (EngineError, InputError, through engine_link) and
its own. Each carries `problem` and `fix`, which the add-on shows as "problem — fix"."""

from .engine_link import EngineError, InputError

__all__ = ["EngineError", "EngineUnavailable", "FloorNotFound", "InputError"]


class EngineUnavailable(Exception):
    """The engine cannot be started; problem and fix are for the user."""

    def __init__(self, problem: str, fix: str):
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem} ({fix})")


class FloorNotFound(InputError):
    """The points hold no near-horizontal plane to level the scene on."""
