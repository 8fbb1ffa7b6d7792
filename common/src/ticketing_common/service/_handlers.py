"""A service's event handlers, each registered from the payload class it handles.

`handles(TicketCreated, on_ticket_created)` files the handler under the payload's own subject
(every payload class names it: `EventData.subject`), never under a subject written beside it,
and its signature ties the payload class to the handler's `Event[...]` parameter, so mypy
rejects a handler of another payload. `Handlers` checks at start-up what a type checker lets
through (a handler typed with `Any` or not at all, one passed as a loosely typed callable:
its event parameter must be annotated `Event[that payload]`) and refuses two handlers for one
subject. A service's bus then subscribes each
one, with what it needs (`Subscription.needs`).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeAlias, TypeVar

from ticketing_common.bus import Dependency
from ticketing_common.events import Event, EventData, Subject
from ticketing_common.service._runtime import RuntimeT

D = TypeVar("D", bound=EventData)

# Every event handler of every service: the service's runtime and the event, nothing else.
EventHandler: TypeAlias = Callable[[RuntimeT, Event[Any]], Awaitable[None]]


@dataclass(frozen=True)
class Subscription(Generic[RuntimeT]):
    """One handler, the payload class it handles, and what it needs to run."""

    payload: type[EventData]
    handler: EventHandler[RuntimeT]
    # What the handler needs besides the bus and the service's own Mongo (which every handler
    # of a service that `uses_mongo` needs): a dependency down holds only the consumers that
    # need it, so Stripe failing a capture does not stop payments learning of new orders.
    needs: frozenset[Dependency] = frozenset()

    @property
    def subject(self) -> Subject:
        return self.payload.subject


def handles(
    payload: type[D],
    handler: Callable[[RuntimeT, Event[D]], Awaitable[None]],
    *,
    needs: Iterable[Dependency] = (),
) -> Subscription[RuntimeT]:
    """`handler` handles the events of `payload`'s subject; mypy rejects a handler whose event
    is not `Event[payload]` (the event's type is invariant in its payload)."""
    return Subscription(payload, handler, frozenset(needs))


class Handlers(Mapping[Subject, EventHandler[RuntimeT]]):
    """A service's handlers by subject, one a subject, each checked against its payload class.

    A mapping, so that a test hands an event straight to `HANDLERS[subject]` as the bus would.
    """

    def __init__(self, *subscriptions: Subscription[RuntimeT]) -> None:
        by_subject: dict[Subject, Subscription[RuntimeT]] = {}
        for subscription in subscriptions:
            check_annotation(subscription)
            if (taken := by_subject.get(subscription.subject)) is not None:
                raise ValueError(
                    f"two handlers for {subscription.subject}: {_name(taken.handler)} and "
                    f"{_name(subscription.handler)}"
                )
            by_subject[subscription.subject] = subscription
        self._by_subject = by_subject

    def __getitem__(self, subject: Subject) -> EventHandler[RuntimeT]:
        return self._by_subject[subject].handler

    def __iter__(self) -> Iterator[Subject]:
        return iter(self._by_subject)

    def __len__(self) -> int:
        return len(self._by_subject)

    @property
    def subscriptions(self) -> tuple[Subscription[RuntimeT], ...]:
        return tuple(self._by_subject.values())

    def needs(self, subject: Subject) -> frozenset[Dependency]:
        """What the handler of `subject` declared it needs (nothing for a subject not handled)."""
        subscription = self._by_subject.get(subject)
        return subscription.needs if subscription is not None else frozenset()


def check_annotation(subscription: Subscription[Any]) -> None:
    """Refuse a handler whose event parameter is not annotated `Event[<its payload class>]`."""
    wanted = subscription.payload
    annotated = _event_annotation(subscription.handler)
    metadata = getattr(annotated, "__pydantic_generic_metadata__", None) or {}
    if metadata.get("origin") is Event and metadata.get("args") == (wanted,):
        return
    raise TypeError(
        f"{_name(subscription.handler)} is registered for {wanted.subject} "
        f"(Event[{wanted.__name__}]) but its event is annotated {annotated!r}"
    )


def _event_annotation(handler: Callable[..., object]) -> object:
    """The annotation of the handler's second parameter, the event (None if it has none)."""
    parameters = list(inspect.signature(handler).parameters.values())
    if len(parameters) != 2:
        raise TypeError(f"{_name(handler)} must take (runtime, event)")
    # A function's own annotations; a callable object's are its `__call__`'s.
    annotated = handler if inspect.isroutine(handler) else type(handler).__call__
    try:
        hints = typing.get_type_hints(annotated)
    except NameError as exc:
        raise TypeError(f"{_name(handler)}: its annotations do not resolve ({exc})") from exc
    return hints.get(parameters[1].name)


def _name(handler: Callable[..., object]) -> str:
    return getattr(handler, "__qualname__", None) or type(handler).__qualname__
