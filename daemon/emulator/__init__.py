"""A fake Huawei cloud (GES v1, Cloud Eye, IAM, the API gateway) over real HTTP on loopback.

It stands on its own: it imports nothing of the daemon code it fakes, so the daemon's
client and Huawei's SDK are both checked against an independent implementation.
"""

from daemon.emulator.clock import ManualClock, Timing
from daemon.emulator.cloud import Cloud
from daemon.emulator.faults import CloudFault, Faults, ScriptedFault
from daemon.emulator.server import EmulatorServer, build_app

__all__ = [
    "Cloud",
    "CloudFault",
    "EmulatorServer",
    "Faults",
    "ManualClock",
    "ScriptedFault",
    "Timing",
    "build_app",
]
