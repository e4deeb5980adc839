"""Fixtures shared by the handler tests."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture
def make_logger(request):
    """A fresh logger wired to one handler; closed after the test."""
    created: list[tuple[logging.Logger, logging.Handler]] = []

    def make(handler: logging.Handler) -> logging.Logger:
        logger = logging.getLogger(f"test.{request.node.name}.{len(created)}")
        logger.handlers[:] = [handler]
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        created.append((logger, handler))
        return logger

    yield make
    for logger, handler in created:
        logger.removeHandler(handler)
        handler.close()


@pytest.fixture
def on_root():
    """Put a handler on the root logger (level INFO), as the README's dictConfig does; removed and closed after."""
    root = logging.getLogger()
    added: list[logging.Handler] = []
    old_level = root.level

    def add(handler: logging.Handler) -> logging.Handler:
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        added.append(handler)
        return handler

    yield add
    for handler in added:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(old_level)
