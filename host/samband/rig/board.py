"""The rig's hub on a real board: what `Rig` does with a virtual hub, done over
the board's USB serial port with the technician's own tools (deploy,
provision, the console), so a test written against the rig fixtures runs on
either. Power comes from the bench's switch (samband.rig.target.BenchPower).

Only what a board can do is offered: its flash cannot be read while it runs
(tests that need that ask for requires("flash-snapshot") and skip here), and
its readings are checked where a board's readings go, in the receiver.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from samband.errors import HubError
from samband.rig.hubs import Rig

if TYPE_CHECKING:
    from samband.rig.target import BenchPower, Target, VirtualPower


class BoardRig(Rig):
    """A Rig whose hub is the board on target.port (a samband.rig.target.Target)."""

    def __init__(self, target: Target, power: BenchPower | VirtualPower | None = None, **kw: Any) -> None:
        kw.pop("heap", None)
        kw.pop("romfs", None)  # a board runs from its own flash
        super().__init__(**kw)
        self.target = target
        self.power = power
        self.uid = None
        self.deployed = None

    @property
    def port(self) -> str:
        return self.target.port

    def provision(self) -> None:
        from samband.device.provision import board_uid, files_for, to_board
        self.uid = board_uid(self.port)
        to_board(self.port, {**files_for(self.depot, self.uid, self.devices, self.hub_config), **self.files})

    def provisioned(self) -> bool:
        return False  # a bench board is provisioned afresh for every rig: its keys match this rig's depot

    def start(self) -> BoardRig:
        """Provision the board with this rig's keys, devices and configuration, then
        deploy this checkout's build for it: the deploy restarts the application and
        waits until it answers, so the console is read from a running hub."""
        from samband.device import build
        from samband.device.deploy import deploy
        self.provision()
        self.deployed = deploy(self.port, build.build(self.target.board), log=self.log)
        self.running = True
        self._read_in_background()
        return self

    def power_cut(self) -> None:
        if self.power is None:
            raise HubError(f"no power switch for the {self.target.board} on {self.port}: "
                           f"give the bench file a [power] section and the hub usb_hub/usb_port")
        self.power.cut(self)

    def stop(self) -> None:
        self._stop.set()
        if self._reader:
            self._reader.join(2)
        self.running = False

    def readings(self, pending: bool = False) -> list[Any]:
        raise HubError("a real board's journal cannot be read while it runs: check its readings in the "
                       "receiver (rig_receiver), or mark the test requires('flash-snapshot')")
