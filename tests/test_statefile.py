"""The state file that `edgesense status` reads."""

from app.statefile import read_state, write_state


def test_state_file_is_replaced_whole_and_readable_by_all(tmp_path):
    path = tmp_path / "state.json"
    assert read_state(path) is None
    write_state(path, {"a": 1})
    write_state(path, {"a": 2})
    assert read_state(path) == {"a": 2}
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]

