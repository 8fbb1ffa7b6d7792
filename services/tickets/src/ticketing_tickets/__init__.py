"""Ticketing tickets service."""
