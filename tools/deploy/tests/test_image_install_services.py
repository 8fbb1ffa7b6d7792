"""Each image's install step, rehearsed outside Docker: the Dockerfile's own `uv sync`, with the
image's build args, into a fresh environment, then its entry points imported there (a missing
dependency fails here)."""

import pytest

from ticketing_deploy.rehearsal import rehearse

# The images split over two modules, so that pytest-xdist runs them side by side.


@pytest.mark.parametrize("image", ["ticketing/auth", "ticketing/tickets", "ticketing/orders"])
def test_the_image_installs_and_imports_its_entry_points(image: str) -> None:
    rehearse(image)
