"""CPU temperature, load average and disk usage from files in tmp_path.

These build without any pin factory installed: they never touch GPIO.
"""

import os

import pytest

from sensors import pins, registry
from sensors.base import Reading


def test_cpu_temperature_in_celsius(tmp_path):
    sensor_file = tmp_path / "temp"
    sensor_file.write_text("45678\n")
    with registry.build("cpu_temperature", {"sensor_file": str(sensor_file)}) as sensor:
        assert sensor.read() == Reading(45.678, "C")
        sensor_file.write_text("51000\n")
        assert sensor.read() == Reading(51.0, "C")


@pytest.mark.parametrize("minutes, expected", [(1, 0.5), (5, 1.25), (15, 2.0)])
def test_load_average_reads_the_chosen_column(tmp_path, minutes, expected):
    loadavg = tmp_path / "loadavg"
    loadavg.write_text("0.50 1.25 2.00 1/123 4567\n")
    options = {"load_average_file": str(loadavg), "minutes": minutes}
    with registry.build("load_average", options) as sensor:
        assert sensor.read() == Reading(expected, "load")


def test_disk_usage_in_percent_as_df_counts_it(tmp_path):
    with registry.build("disk_usage", {"filesystem": str(tmp_path)}) as sensor:
        reading = sensor.read()
    vfs = os.statvfs(tmp_path)
    used = vfs.f_blocks - vfs.f_bfree
    expected = 100 * used / (used + vfs.f_bavail)
    assert reading.unit == "%"
    assert reading.value == pytest.approx(expected, abs=0.5)


def test_missing_sensor_file_fails_the_read(tmp_path):
    sensor_file = tmp_path / "temp"
    sensor_file.write_text("40000\n")
    with registry.build("cpu_temperature", {"sensor_file": str(sensor_file)}) as sensor:
        sensor_file.unlink()
        with pytest.raises(FileNotFoundError):
            sensor.read()


def test_system_sensors_need_no_pin_factory():
    for name in ("cpu_temperature", "load_average", "disk_usage"):
        assert not registry.uses_gpio(registry.resolve(name))
        assert pins.pins_of(name, {}) == []


def test_load_average_minutes_must_be_1_5_or_15():
    assert registry.check_options("load_average", {"minutes": 10}) == [
        ("minutes", "10 is not allowed; expected one of 1, 5, 15")]
