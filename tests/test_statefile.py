"""The state file that `edgesense status` reads."""

from app.statefile import write_state
from app.statusview import read_state


def test_state_file_is_replaced_whole_and_readable_by_all(tmp_path):
    path = tmp_path / "state.json"
    write_state(path, {"supervisor": {"pid": 1, "n": 1}})
    write_state(path, {"supervisor": {"pid": 1, "n": 2}})
    assert read_state(path)[1]["supervisor"] == {"pid": 1, "n": 2}
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
