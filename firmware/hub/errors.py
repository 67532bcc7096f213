# The root of every firmware error. A caller that must survive any failure a
# hub module reports (bad input, a refused config, a BLE procedure that went
# wrong) catches HubError and lets programming errors (TypeError, KeyError...)
# through. It is a ValueError because MicroPython allows one native exception
# base per class and most of these errors are bad values; OSError stays for
# the system's own failures (files, sockets). Kept this small on purpose:
# every module the hub boots imports it.


class HubError(ValueError):
    pass
