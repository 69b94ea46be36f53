"""Reading the domain's effects in tests: what was sent, in order."""

from chat_server.domain.effects import Emit, Release


def sent(published, event=None):
    """The emits among `published`, with what a `Release` sends first (`welcome`, the
    replay) taken as emits to that connection, in their place."""
    found = []
    for effect in published:
        if isinstance(effect, Release):
            found += [Emit(name, data, [effect.sid]) for name, data in effect.first]
        elif isinstance(effect, Emit):
            found.append(effect)
    return [e for e in found if event in (None, e.event)]
