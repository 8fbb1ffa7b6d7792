"""Shared code of the Ticketing services.

Every service is built the same way from these pieces: settings, errors, auth, events,
the bus, the outbox, Mongo helpers, health checks and logging.
"""
