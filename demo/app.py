"""The demo's sample service: a shop that logs what real services log — sign-ups, payments, support tickets, errors
with tracebacks, audited invoice reads — with a simulated clock, so two hours of traffic take a few seconds.

At 01:10 into the run one support account starts reading invoices in bulk (600 in a few minutes): the anomaly an
auditor wants to hear about.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

from presidio_logshield import audit_event, log_context

__all__ = ["SimulatedClock", "Traffic"]

NAMES = ["Alice Johnson", "Bob Martinez", "Chen Wei", "Daniela Rossi", "Erik Larsen", "Fatima Khan", "Grace Kim",
         "Hugo Moreau", "Ines Costa", "Jonas Weber"]
CITIES = ["Berlin", "Chicago", "Lisbon", "Toronto", "Osaka", "Madrid", "Sydney"]
CARDS = ["4111111111111111", "5500005555555559", "340000000000009", "6011000990139424"]
STAFF = ["support-ana", "support-ben", "billing-cho"]


class SimulatedClock(logging.Filter):
    """Stamps every record with the simulated time (a demo device: the handler writes what ``created`` says)."""

    def __init__(self, start: float) -> None:
        super().__init__()
        self.now = start

    def filter(self, record: logging.LogRecord) -> bool:
        record.created = self.now
        record.msecs = (self.now - int(self.now)) * 1000
        return True


@dataclass
class Traffic:
    log: logging.Logger
    clock: SimulatedClock
    rng: random.Random
    raw: dict[str, str]  # request id -> what the application logged, for the side-by-side

    def run(self, minutes: int = 120, per_minute: int = 15, burst_at: int = 70) -> int:
        requests = 0
        for minute in range(minutes):
            for _ in range(per_minute):
                self.clock.now += 60 / per_minute
                self.request(requests)
                requests += 1
            if burst_at <= minute < burst_at + 3:
                self.bulk_export(200)
        return requests

    def request(self, i: int) -> None:
        name = self.rng.choice(NAMES)
        email = name.lower().replace(" ", ".") + f"{i % 37}@example.com"
        rid = f"req-{i:05d}"
        with log_context(request_id=rid, session_id=f"sess-{self.rng.randrange(40):03d}", actor=email):
            kind = i % 6
            if kind == 0:
                args = ("signup from %s: %s <%s>, phone +1 415 555 %04d", f"203.0.113.{self.rng.randint(1, 254)}",
                        name, email, self.rng.randint(0, 9999))
                self.log.info(*args, extra={"plan": "pro", "password": f"S3cr3t!{i}"})
            elif kind == 1:
                args = ("payment card %s accepted for order %d", self.rng.choice(CARDS), 1000 + i)
                self.log.info(*args, extra={"amount_cents": self.rng.randint(100, 99999), "currency": "EUR"})
            elif kind == 2:
                args = ("support ticket: '%s from %s says the invoice is wrong, call me back'", name,
                        self.rng.choice(CITIES))
                self.log.warning(*args)
            elif kind == 3:
                args = ("GET /api/v1/orders/%d 200 in %.1f ms", 1000 + i, self.rng.uniform(2, 80))
                self.log.info(*args)
            elif kind == 4:
                args = ("charge failed for %s", email)
                try:
                    raise ConnectionError(f"upstream https://svc:hunter2@payments.internal/charge refused {email}")
                except ConnectionError:
                    self.log.exception(*args)
            else:
                with log_context(actor=self.rng.choice(STAFF)):
                    audit_event("invoice.read", f"invoice/{self.rng.randrange(5000)}", customer=email)
                args = ("invoice viewed by staff",)
                self.log.info(*args)
            self.raw[rid] = args[0] % args[1:] if len(args) > 1 else args[0]

    def bulk_export(self, count: int) -> None:
        """One account reads far more invoices than anyone usually does."""
        with log_context(actor="support-ben", session_id="sess-999", request_id="req-bulk"):
            for n in range(count):
                self.clock.now += 0.2
                audit_event("invoice.read", f"invoice/{n}", customer=f"customer{n}@example.com")
