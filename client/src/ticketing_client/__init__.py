"""Ticketing web client: server-rendered pages over the API."""
