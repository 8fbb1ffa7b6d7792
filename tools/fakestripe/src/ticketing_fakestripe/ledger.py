"""Stripe's side of things: the PaymentIntents, charges and refunds the fake holds."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from ticketing_fakestripe.cards import Card
from ticketing_fakestripe.errors import Json


@dataclass
class Ledger:
    """Every dict in insertion (= creation) order."""

    intents: dict[str, Json] = field(default_factory=dict)
    charges: dict[str, Json] = field(default_factory=dict)
    refunds: dict[str, Json] = field(default_factory=dict)
    # The card given to a PaymentIntent not confirmed yet, which a bare confirm then charges.
    cards: dict[str, Card] = field(default_factory=dict)
    # PaymentIntents open to the Dashboard's payment methods, which may redirect.
    redirectable: set[str] = field(default_factory=set)


# What a POST does to the ledger with its parameters: (status, body), or raises `Rejected`.
Operation = Callable[[Ledger, Json], tuple[int, Json]]


def new_id(prefix: str) -> str:
    """A fresh Stripe-looking id: `pi_...`, `ch_...`, `re_...`, `pm_...`."""
    return f"{prefix}_{secrets.token_hex(12)}"
