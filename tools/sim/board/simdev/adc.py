"""A voltage on an ADC pin: the scenario gives the source ("voltage", e.g. a battery) and the
divider between it and the pin."""

from simdev.base import Model


class VoltageSource(Model):
    NAME = "voltage"

    def __init__(self, divider=1.0):
        super().__init__()
        self.divider = divider
        self.values = {"voltage": 0.0}

    def pin_volts(self):
        return self.value("voltage") / self.divider
