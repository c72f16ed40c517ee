"""An MCP3008 channel on a mock SPI converter, with linear calibration."""

import pytest
from gpiozero.pins.mock import MockSPIDevice

from sensors import registry
from sensors.analog import CHANNELS
from sensors.base import Reading


class MockMCP3008(MockSPIDevice):
    """The converter's side of the MCP3008 exchange on the Pi's SPI0 pins:
    after a start bit, a single-ended bit and three channel bits it clocks
    out one don't-care bit, a null bit and the channel's 10-bit count."""

    def __init__(self, factory):
        super().__init__(11, 10, 9, 8, pin_factory=factory)
        self.counts = [0] * 8

    def on_bit(self):
        received = self.rx_buf
        if 1 not in received:
            return
        command = received[received.index(1):]
        if len(command) == 5:
            channel = command[2] << 2 | command[3] << 1 | command[4]
            self.tx_word(self.counts[channel], 12)


@pytest.fixture
def adc(mock_factory):
    with MockMCP3008(mock_factory) as converter:
        yield converter


def test_raw_fraction_without_calibration(adc, mock_factory):
    adc.counts[0] = 1023
    with registry.build("analog", {"channel": 0}, mock_factory) as sensor:
        assert sensor.read() == Reading(1.0, "", {"raw": 1023})


def test_calibration_turns_the_count_into_a_unit(adc, mock_factory):
    # A TMP36 on a 3.3 V reference: 0.75 V (count 232) is about 25 C.
    adc.counts[3] = 232
    adc.counts[2] = 1000  # a neighbouring channel must not leak in
    options = {"chip": "MCP3008", "channel": 3, "scale": 330.0,
               "offset": -50.0, "unit": "C"}
    with registry.build("analog", options, mock_factory) as sensor:
        reading = sensor.read()
    assert reading.unit == "C"
    assert reading.extra == {"raw": 232}
    one_count = 330.0 / 1023
    assert reading.value == pytest.approx(330.0 * 232 / 1023 - 50.0, abs=one_count)


def test_channel_out_of_range_for_the_chip_is_reported():
    problems = registry.check_options("analog", {"chip": "MCP3004", "channel": 4})
    assert problems == [("channel", "4 is out of range; expected a number >= 0 and <= 3")]


def test_unknown_chip_is_reported():
    problems = registry.check_options("analog", {"chip": "MCP9999"})
    assert len(problems) == 1 and problems[0][0] == "chip"
    assert problems[0][1].startswith('"MCP9999" is not allowed; expected one of MCP3001, MCP3002,')
    assert "MCP3008" in problems[0][1]


@pytest.mark.parametrize("chip", sorted(CHANNELS))
def test_every_supported_chip_builds_on_its_last_channel(chip, mock_factory):
    options = {"chip": chip, "channel": CHANNELS[chip] - 1}
    assert registry.check_options("analog", options) == []
    sensor = registry.build("analog", options, mock_factory)
    sensor.close()
    sensor.close()


def test_an_unknown_chip_fails_to_build_with_a_clear_message(mock_factory):
    with pytest.raises(ValueError, match="unknown chip 'MCP9999' \\(one of MCP3001,"):
        registry.build("analog", {"chip": "MCP9999"}, mock_factory)
