"""Ticketing expiration service."""
