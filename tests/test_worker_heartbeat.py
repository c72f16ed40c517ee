"""The heartbeat is shared memory: what a worker writes, the supervisor sees."""

import math

from app.heartbeat import Heartbeat


def write_heartbeat(heartbeat):
    heartbeat.tick = 12.5
    heartbeat.read_started = 20.0
    heartbeat.read_ended = 19.0
    heartbeat.last_value = 0.25
    heartbeat.readings = 7


def test_a_child_process_writes_what_the_parent_reads(mp_context):
    heartbeat = Heartbeat.create(mp_context)
    child = mp_context.Process(target=write_heartbeat, args=(heartbeat,))
    child.start()
    child.join(timeout=30)
    assert child.exitcode == 0
    assert heartbeat.tick == 12.5
    assert heartbeat.last_value == 0.25
    assert heartbeat.readings == 7
    assert heartbeat.reading  # read_started > read_ended: a read in progress


def test_a_new_heartbeat_has_no_reading_yet():
    snapshot = Heartbeat.create().snapshot()
    assert math.isnan(snapshot.pop("last_value"))
    assert snapshot == {"tick": 0.0, "read_started": 0.0, "read_ended": 0.0,
                        "last_reading_time": 0.0,
                        "readings": 0, "failures": 0, "build_failure": 0}


def test_a_new_heartbeat_hands_on_the_last_build_failure_only():
    previous = Heartbeat.create()
    previous.build_failure, previous.readings = 123456789, 4
    heartbeat = Heartbeat.create(previous=previous)
    assert (heartbeat.build_failure, heartbeat.readings) == (123456789, 0)
