"""Local servers for the demo, the tests, benchmarks and trials: an embedded writable Tiled
server (SQLite or PostgreSQL catalog) and a throwaway PostgreSQL server on loopback.
Not part of production: a facility runs its own Tiled and PostgreSQL."""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "tiled": ["TiledServerInfo", "tiled_server"],
    "postgres": ["PostgresUnavailable", "postgres_server"],
})
