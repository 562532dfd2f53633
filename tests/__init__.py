"""The evstore test suite (a package so that helpers like ``_postgres`` import relatively
and test modules in sub-packages may share base names)."""
