"""Cellular modems on the host side: a simulator that speaks a real modem's
AT bytes on a pseudo-terminal (sim.py), for the hub's bearer tests."""
