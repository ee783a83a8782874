"""Array layouts: what each kind's index arrays are, declared once.

A kind's builder writes its arrays through its layout module, its query kernels receive
them as the layout's NamedTuples (fields read by name, never unpacked by position), and
the tests decode them through the same module. ``forward`` is the forward index that
the Seismic and SINDI kinds share for exact rescoring.
"""


def read(group: type, arrays):
    """The arrays of one group (a layout NamedTuple whose fields are array names), by name."""
    return group(*(arrays[name] for name in group._fields))
