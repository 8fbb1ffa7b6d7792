"""Auth under test: its settings and app; the rest comes from ticketing_testing's plugin."""

from ticketing_auth.main import create_app
from ticketing_auth.settings import Settings
from ticketing_testing.apps import app_fixture, settings_fixture

settings = settings_fixture(Settings)
app = app_fixture(create_app)
