"""Each image's install step, rehearsed outside Docker (see test_image_install_services.py)."""

import pytest

from ticketing_deploy.rehearsal import rehearse


@pytest.mark.parametrize(
    "image", ["ticketing/payments", "ticketing/expiration", "ticketing/client"]
)
def test_the_image_installs_and_imports_its_entry_points(image: str) -> None:
    rehearse(image)
