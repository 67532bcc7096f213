"""Golden files: bytes the host builds, kept under tests/data/ for the firmware tests
(which run on the MicroPython unix port and cannot build them); a host test checks
they are still what the host builds, and write() regenerates them after a format change."""


def check(folder, files):
    for name, data in files.items():
        assert (folder / name).read_bytes() == data, name


def write(folder, files):
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
