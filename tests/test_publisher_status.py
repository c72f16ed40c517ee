"""What ``edgesense status`` says of the publisher."""

from app.statusview import describe_publisher, describe_state, with_publisher_status

NOW = 1764078100.0


def test_a_connected_publisher_with_a_backlog():
    line = describe_publisher({"state": "running", "pid": 42, "connected": True, "broker": "hub:1883",
                               "backlog": 3, "oldest_pending_ts": "2025-11-25T13:40:40.000+00:00",
                               "last_acked": {"sensor": "door", "id": "ab12-7", "ts": "2025-11-25T13:40:39.000+00:00"},
                               "lost": 0}, NOW)
    assert line == ("publisher: running, pid 42, connected to hub:1883; backlog 3 readings (oldest 1 min 00 s old); "
                    "last acknowledged door ab12-7 at 2025-11-25T13:40:39.000+00:00; lost to the budget 0")


def test_a_refused_publisher_says_why():
    line = describe_publisher({"state": "running", "pid": 42, "connected": False, "broker": "hub:1883",
                               "problem": "the broker refused the connection: Not authorized",
                               "backlog": 0, "lost": 12}, NOW)
    assert line == ("publisher: running, pid 42, not connected to hub:1883 (the broker refused the connection: "
                    "Not authorized); backlog 0 readings; lost to the budget 12")


def test_the_publishers_own_status_is_merged_but_pid_and_state_stay_the_supervisors():
    state = {"supervisor": {"pid": 1, "state": "stopped"}, "publisher": {"pid": 42, "state": "backoff"}}
    merged = with_publisher_status(state, {"pid": 41, "state": "connected", "connected": False, "backlog": 5})
    assert merged["publisher"] == {"pid": 42, "state": "backoff", "connected": False, "backlog": 5}
    assert with_publisher_status({"supervisor": {}}, {"backlog": 5}) == {"supervisor": {}}


def test_the_publisher_line_comes_after_the_head_line():
    state = {"supervisor": {"pid": 1, "state": "stopped"}, "publisher": {"state": "stopped", "backlog": 0}, "sensors": []}
    lines, _running = describe_state(state, NOW)
    assert lines[1].startswith("publisher: stopped, pid -, not connected to ?")
