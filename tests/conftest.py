"""Shared fixtures."""

from tests.fake_pcs import pcs

__all__ = ["pcs"]
