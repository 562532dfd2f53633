"""Every SQL text of the PostgreSQL backend but its functions: the schema and the statements.

Nothing here touches a connection. :class:`Sql` renders the texts for one schema and one
payload column type; the schema name is always quoted as an identifier (it is validated by
the configuration too, but quoting is what makes it safe). The plpgsql functions are in
:mod:`._functions`.

The schema (version 4)
----------------------

``streams``
    ``stream_key bigserial`` (internal key), ``stream_id text`` (unique), ``version bigint``
    (events plus links so far), ``created_at``, ``deleted_at`` (soft delete mark).
``events``
    One row per appended event: ``event_id uuid`` (primary key: ids are unique across the
    store), ``stream_key``/``stream_version`` (unique together: the optimistic-concurrency
    guard), ``position bigint`` (its place in ``$all``; unique; NULL until the event is
    numbered), ``xid xid8`` (for an event stored without a position: its writing
    transaction, so the sequencer finds it), ``event_type``, ``data``/``metadata``
    (``bytea`` or ``jsonb``), ``flags smallint``, ``correlation_id``, ``causation_id``,
    ``created_at``. ``events_unnumbered`` indexes the xids of events without a position.
``links``
    ``(stream_key, stream_version) -> event_id``: an existing event placed in another
    stream. A stream's event numbers are shared by its own events
    (``events.stream_version``) and its links (``links.stream_version``);
    ``unique (stream_key, event_id)`` stops an event being linked twice. Links never enter
    ``$all``.
``sequencer_state``
    One row: ``last_position`` (highest position ever assigned; never lowered, so hard
    deletes leave gaps), ``snapshot pg_snapshot`` (the snapshot of the last cycle that
    numbered events without a position: see :func:`._functions.pending_condition`) and
    ``initialised_at`` (the creation time reported for ``$all``).
``subscriptions``
    One row per persistent subscription: ``(stream_id, subscription_name)`` unique
    (``"$all"`` for all-streams subscriptions), ``last_seen bigint NOT NULL`` (the
    checkpoint: every event number up to it is handled; a new row starts at the
    subscription's ``start_from``), ``created_at``.
``parked_events``
    Events a subscription parked: primary key ``(stream_id, subscription_name,
    event_number)``, the event's ``position`` (to read it back from ``$all``), ``reason``,
    ``retry_count``, ``parked_at``, ``replay_requested``, and ``parked_seq bigserial``: the
    parking order. Parking an event again replaces its row with a new ``parked_seq``, so it
    moves to the end. Not tied to a ``subscriptions`` row: transient subscriptions park too.
``snapshots``, ``schema_migrations``.

There are deliberately no foreign keys on the hot tables: each would add a trigger call
per inserted event, and the functions keep the references right. A dangling ``links`` row
(possible only when a hard delete races a link) is harmless because every read joins
``events``.

Global positions
----------------

Readers see only events with a position, and positions become visible in increasing order,
contiguous but for hard deletes: a reader that has seen position N never later finds an
event below N. Every assignment of positions happens while holding one transaction-level
advisory lock (the *sequencer lock*), continues after ``last_position``, and becomes visible
with its transaction's commit, which happens before the lock is released; so the next
holder starts above every position already visible, and no holder's positions can appear
before an earlier holder's. Positions are only ever given to events that are visible to the
assigning statement: the holder's own, and committed ones. Rolled-back events never get one.

Two ways to get them:

* **In the append's own transaction** (``evstore_write``, the group-commit writer's
  statement): once its stream rows are locked it takes the lock, waiting for it briefly
  (``SEQUENCER_LOCK_WAIT``) when another process's batch holds it. It first numbers every
  committed event still without a position, then inserts its own events with the next
  positions, and commits once: one durable commit per batch. A process sends one batch at
  a time and a batch carries every append queued meanwhile, so the lock is taken once per
  batch, not once per append, and batches grow with the load (the Elixir original takes
  a lock per append, which caps it at one commit's fsync per append).
* **After commit** (``evstore_sequence``, a *sequencer cycle*): events stored without a
  position — because the lock stayed busy, or because they were appended inside a caller's
  transaction (``conn=``), which must never hold the lock — are numbered by the next holder.
  So a busy lock never makes an appender wait for long: under heavy contention appends
  commit in parallel and are numbered in bulk.

Order: the events of one numbering step are ordered by (stream, version), then the
holder's own batch in batch order. A stream's events therefore get positions in version
order: a later version is written under the stream row lock after the earlier one's
transaction committed, and the holder locks its stream rows before it numbers. An append's
events get contiguous positions.

Finding the events without a position costs in proportion to the recent ones, not to the
table or to how long some other transaction has been open: see
:func:`._functions.pending_condition`.

After a logical restore (pg_dump), stored xids may be ahead of the new cluster's: reset
``sequencer_state.snapshot`` to ``'1:1:'`` then; the next cycle looks at every event without
a position once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from evstore.backends.postgres._functions import FUNCTION_NAMES, create_functions

__all__ = ["SCHEMA_VERSION", "Sql", "quote_ident", "quote_literal"]

SCHEMA_VERSION = 4
"""The schema version this code writes and expects."""

_DATA_TABLES = (
    "snapshots",
    "parked_events",
    "subscriptions",
    "links",
    "events",
    "streams",
)
"""Tables holding the store's data: ``reset`` empties them."""
_TABLES = (*_DATA_TABLES, "sequencer_state", "schema_migrations")
_RETIRED_FUNCTIONS = ("evstore_append_batch",)
"""Functions of earlier schema versions that no longer exist."""
_RETIRED_TABLES = ("all_positions",)
"""Tables of earlier schema versions that no longer exist."""


def quote_ident(name: str) -> str:
    """``name`` as a PostgreSQL identifier, whatever it contains."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """``text`` as a PostgreSQL string literal (standard_conforming_strings is on)."""
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class Sql:
    """The SQL of one store: ``schema`` (unquoted name) and its payload column type."""

    schema: str
    column_type: Literal["bytea", "jsonb"] = "bytea"

    @property
    def s(self) -> str:
        """The quoted schema, for qualifying names."""
        return quote_ident(self.schema)

    @property
    def channel(self) -> str:
        """The NOTIFY channel of new readable events: numbering steps (payload: the highest
        position) and committed links (payload ``link``)."""
        return f"{self.schema}.evstore"

    @property
    def channel_literal(self) -> str:
        """:attr:`channel` as an SQL string literal."""
        return quote_literal(self.channel)

    @property
    def sequencer_lock_keys(self) -> str:
        """The sequencer lock's two advisory-lock keys (SQL): the state table's oid names
        this store in this database."""
        return f"{quote_literal(self.s + '.sequencer_state')}::regclass::oid::integer, 1"

    # -- schema ----------------------------------------------------------------------

    def migration_1(self) -> list[str]:
        """The statements creating schema version 1's tables."""
        s, t = self.s, self.column_type
        return [
            f"""CREATE TABLE {s}.streams (
                stream_key bigserial PRIMARY KEY,
                stream_id text NOT NULL CONSTRAINT streams_stream_id_unique UNIQUE,
                version bigint NOT NULL DEFAULT 0,
                created_at timestamptz NOT NULL DEFAULT now(),
                deleted_at timestamptz
            )""",
            f"""CREATE TABLE {s}.events (
                seq bigserial PRIMARY KEY,
                event_id uuid NOT NULL CONSTRAINT events_event_id_unique UNIQUE,
                stream_key bigint NOT NULL,
                stream_version bigint NOT NULL,
                event_type text NOT NULL,
                data {t} NOT NULL,
                metadata {t},
                flags smallint NOT NULL DEFAULT 0,
                correlation_id uuid,
                causation_id uuid,
                created_at timestamptz NOT NULL,
                xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
                CONSTRAINT events_stream_version_unique UNIQUE (stream_key, stream_version)
            )""",
            f"CREATE INDEX events_xid ON {s}.events (xid, seq)",
            f"""CREATE TABLE {s}.links (
                stream_key bigint NOT NULL,
                stream_version bigint NOT NULL,
                seq bigint NOT NULL,
                PRIMARY KEY (stream_key, stream_version),
                CONSTRAINT links_event_unique UNIQUE (stream_key, seq)
            )""",
            f"CREATE INDEX links_seq ON {s}.links (seq)",
            f"""CREATE TABLE {s}.all_positions (
                position bigint PRIMARY KEY,
                seq bigint NOT NULL CONSTRAINT all_positions_seq_unique UNIQUE
            )""",
            # The first snapshot sees nothing as finished, not the current one: a transaction
            # that began before this one could still insert events once the table exists.
            f"""CREATE TABLE {s}.sequencer_state (
                id boolean PRIMARY KEY DEFAULT true CHECK (id),
                snapshot pg_snapshot NOT NULL DEFAULT '1:1:',
                last_position bigint NOT NULL DEFAULT 0,
                initialised_at timestamptz NOT NULL DEFAULT now()
            )""",
            f"INSERT INTO {s}.sequencer_state DEFAULT VALUES",
            f"""CREATE TABLE {s}.snapshots (
                source_id text PRIMARY KEY,
                source_version bigint NOT NULL,
                source_type text NOT NULL,
                data {t} NOT NULL,
                metadata {t},
                flags smallint NOT NULL DEFAULT 0,
                created_at timestamptz NOT NULL DEFAULT now()
            )""",
            f"""CREATE TABLE {s}.subscriptions (
                subscription_id bigserial PRIMARY KEY,
                stream_id text NOT NULL,
                subscription_name text NOT NULL,
                last_seen bigint,
                created_at timestamptz NOT NULL DEFAULT now(),
                CONSTRAINT subscriptions_name_unique UNIQUE (stream_id, subscription_name)
            )""",
        ]

    def migration_2(self) -> list[str]:
        """Version 2 changed functions only (they are created after every migration)."""
        return []

    def migration_3(self) -> list[str]:
        """Version 3, for persistent subscriptions: ``subscriptions.last_seen`` becomes
        ``NOT NULL`` (a row always has a checkpoint) and the ``parked_events`` table."""
        s = self.s
        return [
            f"UPDATE {s}.subscriptions SET last_seen = 0 WHERE last_seen IS NULL",
            f"""ALTER TABLE {s}.subscriptions
                ALTER COLUMN last_seen SET DEFAULT 0,
                ALTER COLUMN last_seen SET NOT NULL""",
            f"""CREATE TABLE {s}.parked_events (
                stream_id text NOT NULL,
                subscription_name text NOT NULL,
                event_number bigint NOT NULL,
                position bigint NOT NULL,
                reason text NOT NULL,
                retry_count integer NOT NULL,
                parked_at timestamptz NOT NULL,
                replay_requested boolean NOT NULL DEFAULT false,
                parked_seq bigserial NOT NULL,
                PRIMARY KEY (stream_id, subscription_name, event_number)
            )""",
            f"""CREATE INDEX parked_events_order
                ON {s}.parked_events (stream_id, subscription_name, parked_seq)""",
        ]

    def migration_4(self) -> list[str]:
        """Version 4: positions move into the event rows, so an append can store and number
        its events in one transaction.

        ``all_positions`` is folded into ``events.position``; ``seq`` goes (links point at
        event ids, event ids become the primary key); ``xid`` is kept only for events
        without a position, indexed by ``events_unnumbered``. The functions of version 3
        are dropped first (their signatures change).
        """
        s = self.s
        return [
            *(f"DROP FUNCTION IF EXISTS {s}.{name}" for name in _RETIRED_FUNCTIONS),
            f"DROP FUNCTION IF EXISTS {s}.evstore_append",
            f"DROP FUNCTION IF EXISTS {s}.evstore_sequence",
            f"DROP FUNCTION IF EXISTS {s}.evstore_link",
            f"ALTER TABLE {s}.events ADD COLUMN position bigint",
            f"""UPDATE {s}.events e SET position = p.position
                FROM {s}.all_positions p WHERE p.seq = e.seq""",
            f"ALTER TABLE {s}.links ADD COLUMN event_id uuid",
            f"""UPDATE {s}.links l SET event_id = e.event_id
                FROM {s}.events e WHERE e.seq = l.seq""",
            f"DELETE FROM {s}.links WHERE event_id IS NULL",  # linked events hard deleted
            f"""ALTER TABLE {s}.links ALTER COLUMN event_id SET NOT NULL,
                DROP CONSTRAINT links_event_unique, DROP COLUMN seq""",
            f"""ALTER TABLE {s}.links
                ADD CONSTRAINT links_event_unique UNIQUE (stream_key, event_id)""",
            f"CREATE INDEX links_event ON {s}.links (event_id)",
            f"DROP TABLE {s}.all_positions",
            # Numbered events need no xid; the others keep theirs for the sequencer.
            f"ALTER TABLE {s}.events DROP CONSTRAINT events_pkey, DROP COLUMN seq",
            f"""ALTER TABLE {s}.events
                DROP CONSTRAINT events_event_id_unique,
                ALTER COLUMN xid DROP NOT NULL,
                ALTER COLUMN xid DROP DEFAULT""",
            f"ALTER TABLE {s}.events ADD CONSTRAINT events_pkey PRIMARY KEY (event_id)",
            f"UPDATE {s}.events SET xid = NULL WHERE position IS NOT NULL",
            f"""CREATE UNIQUE INDEX events_position ON {s}.events (position)
                WHERE position IS NOT NULL""",
            f"CREATE INDEX events_unnumbered ON {s}.events (xid) WHERE position IS NULL",
        ]

    def functions(self) -> list[str]:
        """(Re)create every function in its current form: run after each migration."""
        return create_functions(self)

    def create_migrations_table(self) -> str:
        return f"""CREATE TABLE IF NOT EXISTS {self.s}.schema_migrations (
            version integer PRIMARY KEY,
            migrated_at timestamptz NOT NULL DEFAULT now()
        )"""

    def record_migration(self) -> str:
        return f"INSERT INTO {self.s}.schema_migrations (version) VALUES ($1)"

    def migrations_table_exists(self) -> str:
        return f"SELECT to_regclass({quote_literal(self.s + '.schema_migrations')}) IS NOT NULL"

    def current_version(self) -> str:
        return f"SELECT max(version) FROM {self.s}.schema_migrations"

    def data_column_type(self) -> str:
        """The type of ``events.data`` as created (to refuse a mismatched option)."""
        return f"""SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
            WHERE a.attrelid = to_regclass({quote_literal(self.s + ".events")})
              AND a.attname = 'data' AND NOT a.attisdropped"""

    def drop_objects(self) -> list[str]:
        """Drop evstore's functions (current and retired ones) and tables (also those of
        earlier versions)."""
        s = self.s
        functions = (*FUNCTION_NAMES, *_RETIRED_FUNCTIONS)
        tables = (*_TABLES, *_RETIRED_TABLES)
        return [f"DROP FUNCTION IF EXISTS {s}.{name}" for name in functions] + [
            f"DROP TABLE IF EXISTS {s}.{name}" for name in tables
        ]

    def reset(self) -> list[str]:
        s = self.s
        truncated = ", ".join(f"{s}.{name}" for name in _DATA_TABLES)
        return [
            self.lock_sequencer(),
            f"TRUNCATE {truncated} RESTART IDENTITY",
            # The snapshot stays: a transaction that began earlier may still add events.
            f"UPDATE {s}.sequencer_state SET last_position = 0",
        ]

    def lock_sequencer(self) -> str:
        """Serialise with numbering steps until the end of the transaction."""
        return f"SELECT pg_advisory_xact_lock({self.sequencer_lock_keys})"

    def lock_migrations(self) -> str:
        # The tables may not exist yet, so the key is derived from the schema name.
        return (
            "SELECT pg_advisory_xact_lock(hashtext('evstore.migrate'), "
            f"hashtext({quote_literal(self.schema)}))"
        )

    # -- statements ------------------------------------------------------------------

    @property
    def append(self) -> str:
        return f"SELECT * FROM {self.s}.evstore_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"

    @property
    def write(self) -> str:
        return (
            f"SELECT * FROM {self.s}.evstore_write"
            "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        )

    @property
    def link(self) -> str:
        return f"SELECT * FROM {self.s}.evstore_link($1, $2, $3)"

    @property
    def sequence(self) -> str:
        return f"SELECT * FROM {self.s}.evstore_sequence($1)"

    @property
    def stream_for_delete(self) -> str:
        return (
            f"SELECT stream_key, version, deleted_at IS NOT NULL FROM {self.s}.streams "
            "WHERE stream_id = $1 FOR UPDATE"
        )

    @property
    def soft_delete(self) -> str:
        return f"UPDATE {self.s}.streams SET deleted_at = now() WHERE stream_key = $1"

    @property
    def hard_delete(self) -> str:
        # Own events go everywhere (positions, links to them); the stream's own links go;
        # the events it linked stay in their streams.
        s = self.s
        return f"""WITH gone AS (
                DELETE FROM {s}.events WHERE stream_key = $1 RETURNING event_id
            ), linked AS (
                DELETE FROM {s}.links
                WHERE stream_key = $1 OR event_id IN (SELECT event_id FROM gone)
            )
            DELETE FROM {s}.streams WHERE stream_key = $1"""

    @property
    def stream_row(self) -> str:
        return f"SELECT version, created_at, deleted_at FROM {self.s}.streams WHERE stream_id = $1"

    def read_stream(self, *, forward: bool) -> str:
        """Params: $1 stream_key, $2 lowest number, $3 highest number, $4 count,
        $5 oldest created_at or NULL. Only numbered events are returned."""
        return self._stream_page(
            forward=forward, key="$1", low="$2", high="$3", count="$4", cutoff="$5::timestamptz"
        )

    def read_stream_at_once(self, *, forward: bool) -> str:
        """A stream's row, its latest metadata and a page of it, in one round trip.

        Params: $1 stream id, $2 its metadata stream's id (or NULL), $3 start version (as
        the caller gave it), $4 count. One row per event after four head columns (key,
        version, deleted, metadata); a single row with NULL event columns when the page is
        empty. The page ignores the metadata: when the metadata restricts what is visible,
        the caller reads again with :meth:`read_stream`.
        """
        if forward:
            low, high = "greatest($3, 1)", "st.version"
        else:
            low, high = "1", "CASE WHEN $3 < 0 THEN st.version ELSE least($3, st.version) END"
        page = self._stream_page(
            forward=forward, key="st.stream_key", low=low, high=high, count="$4", cutoff="NULL"
        )
        return f"""SELECT st.stream_key, st.version, st.deleted_at IS NOT NULL,
                ({self._latest_data("$2")}), page.*
            FROM {self.s}.streams st
            LEFT JOIN LATERAL ({page}) page ON st.deleted_at IS NULL
            WHERE st.stream_id = $1
            ORDER BY page.n {"ASC" if forward else "DESC"}"""

    def _latest_data(self, stream_id: str) -> str:
        """The data of the latest entry of stream ``stream_id`` (an SQL expression)."""
        s = self.s
        return f"""SELECT e.data FROM {s}.streams ms
                    CROSS JOIN LATERAL (
                        SELECT own.stream_version AS n, own.event_id FROM {s}.events own
                            WHERE own.stream_key = ms.stream_key
                        UNION ALL
                        SELECT l.stream_version, l.event_id FROM {s}.links l
                            WHERE l.stream_key = ms.stream_key
                    ) entry
                    JOIN {s}.events e ON e.event_id = entry.event_id
                    WHERE ms.stream_id = {stream_id}
                    ORDER BY entry.n DESC LIMIT 1"""

    def _stream_page(
        self, *, forward: bool, key: str, low: str, high: str, count: str, cutoff: str
    ) -> str:
        """A page of a stream, by event number (SQL expressions for each bound).

        Each arm (own events, links) is ordered and limited on its own, so both are index
        scans that stop after ``count`` rows; the outer query merges at most twice count rows.
        Only the bound the scan starts from is an index condition; the far bound is written
        ``number + 0`` so it stays a filter: asyncpg's prepared statements end up on generic
        plans, and a two-sided range of unknown parameters is estimated at a handful of
        rows, which makes the planner fetch and sort the whole stream before the LIMIT.
        """
        s = self.s
        if forward:
            order, near, far = "ASC", f">= {low}", f"<= {high}"
        else:
            order, near, far = "DESC", f"<= {high}", f">= {low}"
        columns = """event_id, stream_key, stream_version, position, event_type, data, metadata,
                flags, correlation_id, causation_id, created_at"""
        own_columns = ", ".join(f"own.{c.strip()}" for c in columns.split(","))
        linked_columns = ", ".join(f"e.{c.strip()}" for c in columns.split(","))
        return f"""SELECT entry.n, entry.event_id, origin.stream_id, entry.stream_version,
                entry.position, entry.event_type, entry.data, entry.metadata, entry.flags,
                entry.correlation_id, entry.causation_id, entry.created_at
            FROM (
                (SELECT own.stream_version AS n, {own_columns} FROM {s}.events own
                    WHERE own.stream_key = {key} AND own.stream_version {near}
                      AND own.stream_version + 0 {far}
                      AND ({cutoff} IS NULL OR own.created_at >= {cutoff})
                      AND own.position IS NOT NULL
                    ORDER BY own.stream_version {order} LIMIT {count})
                UNION ALL
                (SELECT l.stream_version, {linked_columns} FROM {s}.links l
                    JOIN {s}.events e ON e.event_id = l.event_id
                    WHERE l.stream_key = {key} AND l.stream_version {near}
                      AND l.stream_version + 0 {far}
                      AND ({cutoff} IS NULL OR e.created_at >= {cutoff})
                      AND e.position IS NOT NULL
                    ORDER BY l.stream_version {order} LIMIT {count})
            ) entry
            JOIN {s}.streams origin ON origin.stream_key = entry.stream_key
            ORDER BY entry.n {order}
            LIMIT {count}"""

    def read_all(self, *, forward: bool) -> str:
        """Params: $1 lowest position, $2 highest position, $3 count.

        As in a stream page, only the bound the scan starts from is an index condition and
        the far one is a filter (``position + 0``). The first executions of a prepared
        statement get custom plans, and ``BETWEEN 1 AND <max>`` on a table not yet analysed
        is estimated at a few hundred rows: the planner then scanned, joined and sorted the
        whole rest of ``$all`` for every page (46 ms a page at 100,000 events, growing with
        the log) instead of walking the position index for ``count`` rows.
        """
        s = self.s
        order = "ASC" if forward else "DESC"
        if forward:
            near, far = "e.position >= $1", "e.position + 0 <= $2"
        else:
            near, far = "e.position <= $2", "e.position + 0 >= $1"
        return f"""SELECT e.position, e.event_id, origin.stream_id, e.stream_version, e.position,
                e.event_type, e.data, e.metadata, e.flags, e.correlation_id, e.causation_id,
                e.created_at
            FROM {s}.events e
            JOIN {s}.streams origin ON origin.stream_key = e.stream_key
            WHERE {near} AND {far}
            ORDER BY e.position {order}
            LIMIT $3"""

    @property
    def all_info(self) -> str:
        return f"SELECT last_position, initialised_at FROM {self.s}.sequencer_state"

    def paginate(self, order_by: str) -> str:
        """Params: $1 search text or NULL, $2 limit, $3 offset. ``order_by`` comes from a
        fixed table in the storage module, never from the caller.

        ``$all`` is a synthetic row with key 0, created when the schema was initialised.
        The search is a literal, case-sensitive substring test (``strpos``, no patterns).
        """
        s = self.s
        return f"""WITH listed AS (
                SELECT 0::bigint AS key, '$all'::text AS stream_id,
                       last_position AS version, initialised_at AS created_at,
                       NULL::timestamptz AS deleted_at
                    FROM {s}.sequencer_state
                UNION ALL
                SELECT stream_key, stream_id, version, created_at, deleted_at FROM {s}.streams
            ), matching AS (
                SELECT *, CASE WHEN deleted_at IS NULL THEN 'created' ELSE 'deleted' END
                          AS status
                    FROM listed WHERE $1::text IS NULL OR strpos(stream_id, $1::text) > 0
            )
            SELECT total.n, page.stream_id, page.version, page.created_at, page.deleted_at,
                   page.status
            FROM (SELECT count(*) AS n FROM matching) total
            LEFT JOIN LATERAL (
                SELECT * FROM matching ORDER BY {order_by} LIMIT $2 OFFSET $3
            ) page ON true"""

    @property
    def read_snapshot(self) -> str:
        return (
            "SELECT source_id, source_version, source_type, data, metadata, flags, created_at "
            f"FROM {self.s}.snapshots WHERE source_id = $1"
        )

    @property
    def record_snapshot(self) -> str:
        # created_at is the first recording's: the upsert leaves it alone.
        return f"""INSERT INTO {self.s}.snapshots
                (source_id, source_version, source_type, data, metadata, flags)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (source_id) DO UPDATE SET
                source_version = excluded.source_version,
                source_type = excluded.source_type,
                data = excluded.data,
                metadata = excluded.metadata,
                flags = excluded.flags"""

    @property
    def delete_snapshot(self) -> str:
        return f"DELETE FROM {self.s}.snapshots WHERE source_id = $1"

    # -- persistent subscriptions ------------------------------------------------------

    @property
    def create_subscription(self) -> str:
        """Params: $1 stream id, $2 name, $3 first checkpoint. Leaves an existing row alone."""
        return f"""INSERT INTO {self.s}.subscriptions (stream_id, subscription_name, last_seen)
            VALUES ($1, $2, $3)
            ON CONFLICT (stream_id, subscription_name) DO NOTHING"""

    @property
    def subscription_checkpoint(self) -> str:
        return (
            f"SELECT last_seen FROM {self.s}.subscriptions "
            "WHERE stream_id = $1 AND subscription_name = $2"
        )

    @property
    def store_checkpoint(self) -> str:
        return (
            f"UPDATE {self.s}.subscriptions SET last_seen = $3 "
            "WHERE stream_id = $1 AND subscription_name = $2"
        )

    @property
    def delete_subscription(self) -> str:
        s = self.s
        return f"""WITH parked AS (
                DELETE FROM {s}.parked_events WHERE stream_id = $1 AND subscription_name = $2
            )
            DELETE FROM {s}.subscriptions WHERE stream_id = $1 AND subscription_name = $2"""

    @property
    def list_subscriptions(self) -> str:
        # Ordered by code point, as Python sorts the memory backend's keys.
        s = self.s
        return f"""SELECT sub.stream_id, sub.subscription_name, sub.last_seen, sub.created_at,
                (SELECT count(*) FROM {s}.parked_events p
                    WHERE p.stream_id = sub.stream_id
                      AND p.subscription_name = sub.subscription_name)
            FROM {s}.subscriptions sub
            ORDER BY sub.stream_id COLLATE "C", sub.subscription_name COLLATE "C"
        """

    @property
    def park(self) -> str:
        """Params: $1 stream id, $2 name, then the entry's columns. A parked event parked
        again takes the new values and a new ``parked_seq``: it moves to the end."""
        return f"""INSERT INTO {self.s}.parked_events AS p (stream_id, subscription_name,
                event_number, position, reason, retry_count, parked_at, replay_requested)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            ON CONFLICT (stream_id, subscription_name, event_number) DO UPDATE SET
                position = excluded.position,
                reason = excluded.reason,
                retry_count = excluded.retry_count,
                parked_at = excluded.parked_at,
                replay_requested = excluded.replay_requested,
                parked_seq = DEFAULT"""

    @property
    def parked(self) -> str:
        return f"""SELECT event_number, position, reason, retry_count, parked_at,
                replay_requested
            FROM {self.s}.parked_events
            WHERE stream_id = $1 AND subscription_name = $2
            ORDER BY parked_seq"""

    @property
    def request_replay(self) -> str:
        return (
            f"UPDATE {self.s}.parked_events SET replay_requested = true "
            "WHERE stream_id = $1 AND subscription_name = $2"
        )

    @property
    def unpark(self) -> str:
        return (
            f"DELETE FROM {self.s}.parked_events "
            "WHERE stream_id = $1 AND subscription_name = $2 AND event_number = ANY ($3::bigint[])"
        )
