"""A monotonic clock and sleep that only move when slept on, shared by the unit tests."""


class FakeClock(object):
    def __init__(self, now=1000.0):
        self.now = now
        self.slept = []

    def __call__(self):
        return self.now

    monotonic = __call__

    def sleep(self, seconds):
        assert seconds >= 0
        self.slept.append(seconds)
        self.now += seconds
