"""
Suite-wide fixtures.

Where ROS 2 is installed, pytest auto-loads launch_testing's plugin, which imports ``launch``;
``launch`` calls ``logging.setLoggerClass(LaunchLogger)``, whose loggers do not propagate to the
root logger, so ``caplog`` sees nothing from the ``vggt_mapper.*`` loggers created afterwards.
Programs of this package never import ``launch``: the standard behaviour is restored in every
test (but the live launch tests, where ``launch`` runs), so the suite passes with ROS sourced.
"""

from __future__ import annotations

import logging

import pytest

PACKAGE_LOGGER = 'vggt_mapper'


@pytest.fixture(autouse=True)
def _package_loggers_propagate(request: pytest.FixtureRequest,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the package's loggers propagate, as they do without ``launch`` imported."""
    if 'ros_live' in request.path.parts:
        return
    # Loggers of modules first imported during the test: plain loggers, not launch's.
    monkeypatch.setattr(logging.root.manager, 'loggerClass', logging.Logger)
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if (name == PACKAGE_LOGGER or name.startswith(PACKAGE_LOGGER + '.')) and isinstance(
                logger, logging.Logger):
            monkeypatch.setattr(logger, 'propagate', True)
