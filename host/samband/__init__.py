"""Samband host tools: the `samband` CLI, virtual hub, firmware build and (later) receiver and simulators."""

__version__ = "0.1.0"
