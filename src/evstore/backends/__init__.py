"""Storage backends: one async contract (:mod:`evstore.backends.base`), several databases."""
