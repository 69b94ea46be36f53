"""A clock the domain tests move by hand (the domain takes `clock` and `monotonic`)."""


class Clock:
    def __init__(self, now=1_000_000.0):
        self.now = now

    def __call__(self):
        return self.now
