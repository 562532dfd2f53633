"""The conformance suite every evstore storage backend must pass.

It is a set of pytest test classes (one per topic, combined in :class:`ConformanceSuite`)
that drive a backend only through the public :class:`evstore.AsyncEventStore`, so a backend
passes exactly when users cannot tell it from the reference memory backend. It needs pytest
and pytest-asyncio.

To bind it to a backend, subclass it in a test module and provide a ``store_factory``
fixture: an async callable ``await store_factory(**options)`` that returns an *open* store
on a fresh, empty database of the backend (``shared=True``: on the database of the test's
first store instead; ``shared=store``: on that store's database) and closes every store it
opened when the test ends. :func:`open_store_factory` builds one from a source of fresh
database URLs::

    import uuid
    from collections.abc import AsyncIterator

    import pytest

    pytest.register_assert_rewrite("evstore.testing")  # readable assertion failures

    from evstore import AsyncEventStore
    from evstore.testing import ConformanceSuite, StoreFactory, open_store_factory

    class TestMyBackend(ConformanceSuite):
        @pytest.fixture
        async def store_factory(self) -> AsyncIterator[StoreFactory]:
            async with open_store_factory(
                lambda: f"mybackend://test-{uuid.uuid4().hex}",
                cleanup=AsyncEventStore.drop,  # optional: awaited with each URL at the end
            ) as factory:
                yield factory

(Under pytest-asyncio's strict mode, decorate the fixture with ``pytest_asyncio.fixture``.)
Tests are named ``test_<topic>_<behaviour>``; select topics with ``-k``, and leave out the
slow ones (8,001-event appends) with ``-m "not slow"``.
"""

from evstore.testing._suite import ConformanceSuite
from evstore.testing._support import StoreFactory, open_store_factory

__all__ = ["ConformanceSuite", "StoreFactory", "open_store_factory"]
