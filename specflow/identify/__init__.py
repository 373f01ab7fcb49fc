"""Phase identification: which crystal phase a run's curves (or segments) show.

The reference library of stick patterns (``reference``), their rendering on a Q grid
(``patterns``), how far compression can have shifted them (``compression``), the matcher and
the trained identifier (``matching``) and phase shares of mixtures (``mixture``).
"""
