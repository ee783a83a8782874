"""Index builders, one module per kind: ``BuildParams`` + ``build(docs, params) -> arrays``."""
