"""Personae: create AI characters and chat with them, without losing a message."""

__version__ = "0.1.0"
