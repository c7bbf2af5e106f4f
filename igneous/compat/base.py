"""The base of the original Igneous's task classes, translated onto ours.

An ``OriginalTask`` subclass declares the original task's keywords (in its
positional order, with defaults) and which of them we cannot honour. It
checks a call the way the original's constructor would (unknown or missing
keywords are a TypeError naming them) and refuses a keyword we do not support
when it is given a value other than the original's default, by name
(UserError), never dropping it silently. ``task()`` returns the one Task of
ours doing the same work; ``execute()`` runs it.

Instances are ``functools.partial`` objects of a function keyed exactly as the
original's payloads are (``(its module, its name)``), so python-task-queue
queues a hand-made ``DownsampleTask(...)`` in the original's own format.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, ClassVar

from igneous.errors import UserError
from igneous.tasks import Task

REQUIRED = object()  # marks a keyword without a default


def rebuild(cls: type, kwargs: dict[str, Any]) -> Any:
    """Unpickle an OriginalTask (partial's own reduce would re-bind positionally)."""
    return cls(**kwargs)


class OriginalTask(functools.partial):
    # keyword -> default (REQUIRED when none), in the original's positional order
    params: ClassVar[Mapping[str, Any]] = {}
    # keywords we cannot honour -> why; refused unless left at their default
    unsupported: ClassVar[Mapping[str, str]] = {}
    runner: ClassVar[Any] = None

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        from igneous.compat.bridge import ORIGINAL_TASKS

        name = cls.__name__

        def run(**kwargs: Any) -> Any:
            return cls(**kwargs).execute()

        run.__name__ = run.__qualname__ = name
        run.__module__ = ORIGINAL_TASKS.get(name, "igneous.compat")
        cls.runner = run

    def __new__(cls, *args: Any, **kwargs: Any) -> OriginalTask:
        bound = cls.bind(args, kwargs)
        return super().__new__(cls, cls.runner, **bound)

    @classmethod
    def bind(cls, args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
        name = cls.__name__
        names = list(cls.params)
        if len(args) > len(names):
            raise TypeError(f"{name} takes at most {len(names)} positional arguments ({len(args)} given)")
        given = dict(zip(names, args))
        for k, v in kwargs.items():
            if k in given:
                raise TypeError(f"{name} got multiple values for argument {k!r}")
            given[k] = v
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise UserError(f"{name}: unsupported keyword {unknown[0]!r} (the original Igneous's "
                            f"{name} takes: {', '.join(names)})")
        missing = [k for k in names if cls.params[k] is REQUIRED and k not in given]
        if missing:
            raise TypeError(f"{name} missing required argument {missing[0]!r}")
        for k, why in cls.unsupported.items():
            if k in given and not _same(given[k], cls.params[k]):
                raise UserError(f"{name}: keyword {k}={given[k]!r} is not supported here ({why})")
        return given

    def arg(self, key: str) -> Any:
        """A keyword's value, the original's default when not given."""
        return self.keywords.get(key, self.params[key])

    def __getattr__(self, key: str) -> Any:
        # the original's task objects expose their arguments as attributes
        params = type(self).params
        if key in params:
            return self.keywords.get(key, params[key])
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {key!r}")

    def __reduce__(self):
        return (rebuild, (type(self), dict(self.keywords)))

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.keywords == other.keywords  # type: ignore[union-attr]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.keywords.items())})"

    # python-task-queue's task protocol
    _id: Any = -1

    @property
    def id(self) -> Any:
        return self._id

    def payload(self) -> dict[str, Any]:
        """The original's class-style payload ``{"class": NAME, ...}``."""
        return {**self.keywords, "class": type(self).__name__}

    def task(self) -> Task:
        """The Task of ours doing this work."""
        raise NotImplementedError

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        return self.task()()


def _same(value: Any, default: Any) -> bool:
    if isinstance(value, (list, tuple)) and isinstance(default, (list, tuple)):
        return list(value) == list(default)
    try:
        return bool(value == default)
    except Exception:  # noqa: BLE001 - e.g. numpy arrays: not the default
        return False


def triple(v: Any, what: str) -> list[int]:
    try:
        out = [int(x) for x in v]
    except (TypeError, ValueError):
        raise UserError(f"{what} must be three integers, got {v!r}") from None
    if len(out) != 3:
        raise UserError(f"{what} must be three integers, got {v!r}")
    return out
