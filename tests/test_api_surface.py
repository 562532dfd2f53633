"""The public surface: ``evstore.__all__`` pinned, and checked against the contract in
``../shared/design/API.md`` (names, methods, parameters and defaults).

Adding or removing a public name means editing ``PINNED`` here, on purpose.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

import evstore
from evstore import AsyncEventStore, EventStore, EventStoreError

API_MD = Path(__file__).resolve().parents[2] / "shared" / "design" / "API.md"

PINNED = {
    "ANY_VERSION",
    "NO_STREAM",
    "STREAM_EXISTS",
    "AlreadySubscribedError",
    "AppendResult",
    "AsyncEventStore",
    "CannotAppendToAllStreamError",
    "CannotDeleteAllStreamError",
    "ConcurrencyError",
    "ConfigurationError",
    "DuplicateEventError",
    "EventData",
    "EventNotFoundError",
    "EventStore",
    "EventStoreError",
    "EventStoreTimeoutError",
    "ExpectedVersion",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "JsonSerializer",
    "NotSupportedError",
    "Page",
    "RecordedEvent",
    "Serializer",
    "SnapshotData",
    "SnapshotNotFoundError",
    "StorageError",
    "StreamDeletedError",
    "StreamExistsError",
    "StreamInfo",
    "StreamNotFoundError",
    "Subscription",
    "SubscriptionAlreadyExistsError",
    "SubscriptionError",
    "SubscriptionInfo",
    "SubscriptionRequest",
    "SyncSubscription",
    "SyncTransientSubscription",
    "TooManySubscribersError",
    "TransientSubscription",
    "WrongExpectedVersionError",
    "__version__",
}

# API.md methods that are not built yet. Strict xfail: each turns into a failure, to be
# removed from here, the day it exists.
NOT_BUILT_YET: set[str] = set()

# Known gaps of the sync twin (strict xfail, as above).
SYNC_GAPS: set[str] = set()

# Async-only by nature: a caller's asyncpg connection cannot cross to the sync twin's thread.
ASYNC_ONLY_PARAMETERS = {"conn"}

NOT_NAMES = {"None", "ValueError", "TypeError", "T"}


def _api_md() -> str:
    if not API_MD.exists():
        pytest.skip(f"{API_MD} is not checked out beside the project")
    return API_MD.read_text(encoding="utf-8")


def _api_md_names() -> set[str]:
    """Names API.md spells as public: backticked classes/errors and ``evstore.X``."""
    text = _api_md()
    names = set(re.findall(r"`([A-Z][A-Za-z]+)(?:[`(\[])", text))
    names |= {n for n in re.findall(r"evstore\.([A-Za-z_]+)\b", text) if n[0].isupper()}
    return names - NOT_NAMES


def _api_md_signatures() -> dict[str, str]:
    """``name -> "name(params)"`` for every method in API.md's method table."""
    signatures: dict[str, str] = {}
    for line in _api_md().splitlines():
        if not line.startswith("| `"):
            continue
        first_cell = line.split("|")[1]
        for signature in re.findall(r"`([a-z_]+\([^`]*\))`", first_cell):
            signatures[signature.split("(")[0]] = signature
    return signatures


def _lifecycle_methods() -> list[str]:
    text = _api_md()
    match = re.search(r"`evstore\.AsyncEventStore\.init\([^`]*\)`((?: / `[a-z]+`)+)", text)
    assert match, "API.md no longer lists the lifecycle classmethods where expected"
    return ["init", *re.findall(r"`([a-z]+)`", match.group(1))]


def _default(node: ast.expr) -> Any:
    """A documented default: a literal, or a public name such as ``ANY_VERSION``."""
    if isinstance(node, ast.Name):
        return getattr(evstore, node.id)
    return ast.literal_eval(node)


def _documented_parameters(signature: str) -> list[tuple[str, inspect._ParameterKind, Any]]:
    """Parameters of an API.md signature: (name, kind, default or ``inspect._empty``)."""
    # "stream_backward(…, start_version=-1, …)" means "like the one above": drop the "…".
    signature = re.sub(r"…,\s*|,\s*…", "", signature)
    tree = ast.parse(f"def {signature}: pass")
    function = tree.body[0]
    assert isinstance(function, ast.FunctionDef)
    arguments = function.args
    positional = arguments.args
    defaults = [inspect.Parameter.empty] * (len(positional) - len(arguments.defaults)) + [
        _default(d) for d in arguments.defaults
    ]
    found: list[tuple[str, inspect._ParameterKind, Any]] = [
        (a.arg, inspect.Parameter.POSITIONAL_OR_KEYWORD, d)
        for a, d in zip(positional, defaults, strict=True)
    ]
    found += [
        (
            a.arg,
            inspect.Parameter.KEYWORD_ONLY,
            inspect.Parameter.empty if d is None else _default(d),
        )
        for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True)
    ]
    return found


def test_api_surface_all_is_pinned() -> None:
    assert len(evstore.__all__) == len(set(evstore.__all__)), "duplicates in __all__"
    assert set(evstore.__all__) == PINNED


def test_api_surface_every_exported_name_resolves() -> None:
    for name in evstore.__all__:
        assert getattr(evstore, name, None) is not None, name


def test_api_surface_api_md_names_are_exported() -> None:
    documented = _api_md_names()

    assert {"EventData", "RecordedEvent", "Page", "ANY_VERSION"} <= documented  # parser works
    assert documented - set(evstore.__all__) == set()


def test_api_surface_api_md_method_table_is_parsed() -> None:
    signatures = _api_md_signatures()

    assert {"append_to_stream", "stream_all_backward", "read_snapshot"} <= set(signatures)
    assert len(signatures) >= 25


def test_api_surface_errors_form_one_tree() -> None:
    errors = [getattr(evstore, n) for n in evstore.__all__ if n.endswith("Error")]

    assert len(errors) >= 20
    for error in errors:
        assert issubclass(error, EventStoreError), error
        assert error.__doc__, f"{error.__name__} has no docstring"
    # Bad input and bad options are ValueError/TypeError subclasses (API.md, "Errors").
    assert issubclass(evstore.InvalidArgumentError, ValueError)
    assert issubclass(evstore.InvalidArgumentTypeError, TypeError)
    assert issubclass(evstore.ConfigurationError, ValueError)
    assert issubclass(evstore.EventStoreTimeoutError, TimeoutError)


def test_api_surface_expected_version_constants() -> None:
    constants = {evstore.ANY_VERSION, evstore.NO_STREAM, evstore.STREAM_EXISTS}

    assert len(constants) == 3
    assert all(isinstance(c, evstore.ExpectedVersion) for c in constants)


def _method_cases() -> list[Any]:
    try:
        names = sorted(_api_md_signatures())
    except pytest.skip.Exception:
        return []
    return [
        pytest.param(
            name,
            marks=pytest.mark.xfail(strict=True, reason="subscriptions are not built yet")
            if name in NOT_BUILT_YET
            else (),
        )
        for name in names
    ]


@pytest.mark.parametrize("store_class", [AsyncEventStore, EventStore])
@pytest.mark.parametrize("name", _method_cases())
def test_api_surface_api_md_method_signatures(store_class: type[Any], name: str) -> None:
    method = getattr(store_class, name, None)
    assert callable(method), f"{store_class.__name__}.{name} is missing"
    actual = inspect.signature(method).parameters

    for parameter, kind, default in _documented_parameters(_api_md_signatures()[name]):
        if parameter == "options" or (
            store_class is EventStore and parameter in ASYNC_ONLY_PARAMETERS
        ):
            continue
        assert parameter in actual, f"{store_class.__name__}.{name} lacks {parameter}"
        assert actual[parameter].kind == kind, f"{name}({parameter}) kind"
        assert actual[parameter].default == default, f"{name}({parameter}) default"


@pytest.mark.parametrize("store_class", [AsyncEventStore, EventStore])
def test_api_surface_lifecycle_classmethods(store_class: type[Any]) -> None:
    names = _lifecycle_methods()

    assert set(names) == {"init", "create", "drop", "migrate", "reset"}
    for name in names:
        assert isinstance(inspect.getattr_static(store_class, name), classmethod), name


def _async_public_names() -> list[Any]:
    names = sorted(n for n in dir(AsyncEventStore) if not n.startswith("_"))
    return [
        pytest.param(
            n,
            marks=pytest.mark.xfail(strict=True, reason="not on the sync twin yet")
            if n in SYNC_GAPS
            else (),
        )
        for n in names
    ]


@pytest.mark.parametrize("name", _async_public_names())
def test_api_surface_sync_twin_has_every_async_name(name: str) -> None:
    assert hasattr(EventStore, name)
    async_parameters = _parameters(getattr(AsyncEventStore, name))
    sync_parameters = _parameters(getattr(EventStore, name))
    assert async_parameters - ASYNC_ONLY_PARAMETERS == sync_parameters - ASYNC_ONLY_PARAMETERS


def _parameters(attribute: Any) -> set[str]:
    if not callable(attribute):
        return set()
    return set(inspect.signature(attribute).parameters) - {"self"}


def test_api_surface_recorded_events_read_back_are_frozen_dataclasses() -> None:
    import dataclasses

    with evstore.EventStore("memory://") as store:
        store.append_to_stream("s", 0, [evstore.EventData("E", {"a": 1})])
        [event] = store.read_stream_forward("s")

    assert type(event) is evstore.RecordedEvent
    assert dataclasses.is_dataclass(event)
    assert dataclasses.replace(event, data=2).data == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.data = 3  # type: ignore[misc]
    assert event == dataclasses.replace(event)
    assert hash(event.event_id) == hash(dataclasses.replace(event).event_id)
