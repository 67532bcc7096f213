# The Samband hub firmware. Everything here runs on MicroPython boards
# and on the unix port (the virtual hub); pure modules also import under
# CPython so that the host can cross-check them.

VERSION = "0.1.0"
