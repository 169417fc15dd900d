"""What a process takes from its environment (syncengine/environment.py):
read once at the edge into a Tuning; the crash hook armed only when asked."""

from __future__ import annotations

from syncengine.environment import arm_crash_hook, tuning_from_environment
from syncengine.treesync import faults
from syncengine.treesync.model import Tuning


def test_the_knobs_default_to_on_and_libacl_when_importable():
    assert tuning_from_environment({}) == Tuning(precheck=True, writer=True, acl_backend=None)


def test_helpers_off_and_raw_acls_as_the_environment_says():
    tuning = tuning_from_environment({"SYNCENGINE_PRECHECK": "0", "SYNCENGINE_WRITER": "0",
                                      "SYNCENGINE_ACL_BACKEND": "raw"})
    assert tuning == Tuning(precheck=False, writer=False, acl_backend="raw")


def test_an_acl_backend_other_than_raw_is_the_default():
    for value in ("libacl", "RAW", ""):
        assert tuning_from_environment({"SYNCENGINE_ACL_BACKEND": value}).acl_backend is None


def test_the_crash_hook_is_armed_only_when_asked():
    try:
        arm_crash_hook({})
        assert not faults.armed()
        arm_crash_hook({"SYNCENGINE_STALL_AFTER": "1000000", "SYNCENGINE_STALL_SECONDS": "0"})
        assert faults.armed() and faults.count() == 0
    finally:
        faults.arm(-1)
    assert not faults.armed()
