"""A toy index kind: the documents as they are, searched by brute force in numpy.

It is the kind docs/adding-a-kind.md walks through, and the conformance suite runs over it
like over the built-in kinds: ``sparseir.kinds.register_kind("toy", "toykind.indexer",
"toykind.query", "toykind.layout")``.
"""
