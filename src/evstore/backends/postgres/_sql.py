"""Every SQL text of the PostgreSQL backend: the schema, its functions and the statements.

Nothing here touches a connection. :class:`Sql` renders the texts for one schema and one
payload column type; the schema name is always quoted as an identifier (it is validated by
the configuration too, but quoting is what makes it safe).

The schema (version 3)
----------------------

``streams``
    ``stream_key bigserial`` (internal key), ``stream_id text`` (unique), ``version bigint``
    (events plus links so far), ``created_at``, ``deleted_at`` (soft delete mark).
``events``
    One row per appended event: ``seq bigserial`` (insertion order, internal),
    ``event_id uuid`` (unique), ``stream_key``/``stream_version`` (unique together: the
    optimistic-concurrency guard), ``event_type``, ``data``/``metadata`` (``bytea`` or
    ``jsonb``), ``flags smallint``, ``correlation_id``, ``causation_id``, ``created_at``
    and ``xid xid8 DEFAULT pg_current_xact_id()`` — the writing transaction, indexed with
    ``seq`` so the sequencer finds recent rows cheaply.
``links``
    ``(stream_key, stream_version) -> seq``: an existing event placed in another stream.
    A stream's event numbers are shared by its own events (``events.stream_version``) and
    its links (``links.stream_version``); ``unique (stream_key, seq)`` stops an event being
    linked twice. Links never enter ``$all``.
``all_positions``
    ``position bigint`` primary key, ``seq bigint`` unique: the global ``$all`` log. Only the
    sequencer inserts here, never updates.
``sequencer_state``
    One row: ``snapshot pg_snapshot`` (the snapshot of the last sequencer cycle: every
    event row whose transaction it saw as finished has a position), ``last_position``
    (highest position ever assigned; never lowered, so hard deletes leave gaps) and
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
per inserted event, and the functions below keep the references right. A dangling
``links``/``all_positions`` row (possible only when a hard delete races a link or a
sequencer cycle) is harmless because every read joins ``events``.

Global positions
----------------

Appends take no global lock: they lock their stream row only. A sequencer cycle
(``evstore_sequence``), serialised across processes by a transaction-level advisory lock,
numbers committed event rows that have no position yet after ``last_position``, in one
``INSERT ... SELECT`` into ``all_positions``, records that
statement's snapshot, and sends one NOTIFY. Because numbers are handed out by one atomic
step at a time, positions are contiguous (rolled-back rows never get one) and never become
visible out of order: a cycle commits all its positions at once, above every earlier one.

Which rows a cycle numbers: those its statement's snapshot shows (so: committed) and that
the previous cycle's snapshot did not show as finished — xid in that snapshot's in-progress
list or at/above its xmax. Every row the previous snapshot saw as finished and committed was
visible to it, so it already has a position. Both conditions are index lookups on
``events (xid, seq)``, so a cycle costs in proportion to the new rows, not to the table or
to how long some other transaction has been open. (An anti-join on ``all_positions`` is
kept as a safety net; with so few candidates it is cheap.)

This refines the design of the reference (§4.5: number rows with ``xid`` below the
snapshot xmin, in ``(xid, seq)`` order) in two ways that matter:

* A long transaction anywhere in the cluster (xmin is cluster-wide) does not hold positions
  back: committed rows are numbered at the next cycle whatever else is still open.
* A stream's events get positions in version order. Its rows are written under its row
  lock, so a later version has a higher ``seq`` and is committed no earlier; a transaction
  can have taken its xid long before (a group-commit batch, a caller's ``conn=``
  transaction), so xid order would not give this.

Order within a cycle: rows are grouped in blocks of one transaction and one stream, blocks
ordered by their first ``seq``, rows in a block by ``seq``. So an append's events get
contiguous positions even when concurrent INSERTs interleave their ``seq`` values, and a
stream's blocks stay in version order: a later block of a stream was inserted after the
earlier one's transaction committed (the stream row lock), so all its ``seq`` values are
higher.

The xid-horizon version would keep positions correct too, but stall every appender behind
the oldest writing transaction on the server and break per-stream order in ``$all``.

After a logical restore (pg_dump), stored xids may be ahead of the new cluster's: reset
``sequencer_state.snapshot`` to ``'1:1:'`` then; the next cycle re-reads the whole table once
and numbers only the rows that have no position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ANY",
    "NO_STREAM",
    "SCHEMA_VERSION",
    "STATUS_DUPLICATE",
    "STATUS_EXPECTATION",
    "STATUS_NOT_FOUND",
    "STATUS_OK",
    "STATUS_RETRY",
    "STREAM_EXISTS",
    "Sql",
    "quote_ident",
    "quote_literal",
]

SCHEMA_VERSION = 3
"""The schema version this code writes and expects."""

# How the functions receive a symbolic expected version (integers are passed as they are).
ANY = -1
NO_STREAM = -2
STREAM_EXISTS = -3

# Status codes returned by evstore_append / evstore_link.
STATUS_OK = 0
STATUS_EXPECTATION = 1
"""The expectation failed; the row carries the stream's state for the Python-side check."""
STATUS_DUPLICATE = 2
"""An event id is already stored / already in the target; ``detail`` names it."""
STATUS_RETRY = 3
"""A lock wait timed out or deadlocked; nothing was written, run the call again."""
STATUS_NOT_FOUND = 4
"""Link: ``detail`` lists the unknown event ids, comma separated."""
STATUS_ERROR = 9
"""Anything else; ``detail`` is ``SQLSTATE: message``."""

_DATA_TABLES = (
    "snapshots",
    "parked_events",
    "subscriptions",
    "links",
    "all_positions",
    "events",
    "streams",
)
"""Tables holding the store's data: ``reset`` empties them."""
_TABLES = (*_DATA_TABLES, "sequencer_state", "schema_migrations")
_FUNCTIONS = (
    "evstore_append",
    "evstore_append_batch",
    "evstore_link",
    "evstore_sequence",
    "evstore_expectation_holds",
)


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
        """The NOTIFY channel of new readable events: sequencer cycles that numbered rows
        (payload: the highest position) and committed links (payload ``link``)."""
        return f"{self.schema}.evstore"

    # -- schema ----------------------------------------------------------------------

    def migration_1(self) -> list[str]:
        """The statements creating schema version 1."""
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
            self._expectation_function(),
            self._append_function(),
            self._link_function(),
            self._sequence_function(),
        ]

    def migration_2(self) -> list[str]:
        """Version 2: the set-based group-commit append (``evstore_append_batch``), and a
        sequencer cycle that writes nothing when it numbers nothing."""
        return [self._append_batch_function(), self._sequence_function()]

    def migration_3(self) -> list[str]:
        """Version 3, for persistent subscriptions: ``subscriptions.last_seen`` becomes
        ``NOT NULL`` (a row always has a checkpoint), the ``parked_events`` table, and a
        link function that sends the sequencer's NOTIFY (a link makes events readable in
        its stream at once, with no sequencer cycle to announce them)."""
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
            self._link_function(),
        ]

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
        s = self.s
        return [f"DROP FUNCTION IF EXISTS {s}.{name}" for name in _FUNCTIONS] + [
            f"DROP TABLE IF EXISTS {s}.{name}" for name in _TABLES
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

    def _sequencer_lock_call(self) -> str:
        # Two-key advisory lock: the state table's oid names this store in this database.
        oid = f"{quote_literal(self.s + '.sequencer_state')}::regclass::oid::integer"
        return f"pg_advisory_xact_lock({oid}, 1)"

    def lock_sequencer(self) -> str:
        """Serialise with sequencer cycles until the end of the transaction."""
        return f"SELECT {self._sequencer_lock_call()}"

    def lock_migrations(self) -> str:
        # The tables may not exist yet, so the key is derived from the schema name.
        return (
            "SELECT pg_advisory_xact_lock(hashtext('evstore.migrate'), "
            f"hashtext({quote_literal(self.schema)}))"
        )

    # -- functions -------------------------------------------------------------------

    def _expectation_function(self) -> str:
        # p_version is NULL when the stream does not exist. Mirrors rules.check_expected_version
        # (reference §1.2.1); when it fails, Python re-runs that check to raise the error.
        return f"""CREATE OR REPLACE FUNCTION {self.s}.evstore_expectation_holds(
                p_expected bigint, p_version bigint, p_deleted boolean)
            RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
            SELECT CASE
                WHEN coalesce(p_deleted, false) THEN false
                WHEN p_expected = {ANY} THEN true
                WHEN p_expected = {NO_STREAM} THEN coalesce(p_version, 0) = 0
                WHEN p_expected = {STREAM_EXISTS} THEN p_version IS NOT NULL
                ELSE p_expected = coalesce(p_version, 0)
            END
        $$"""

    def _append_function(self) -> str:
        """``evstore_append``: one append, checked and written in its own subtransaction.

        The ``BEGIN ... EXCEPTION`` block is the subtransaction: a failed append rolls back
        only itself, so a group-commit batch keeps its other appends. Lock waits end with
        ``STATUS_RETRY`` (the writer sets ``lock_timeout``) instead of stalling the batch.
        """
        s, t = self.s, self.column_type
        return f"""CREATE OR REPLACE FUNCTION {s}.evstore_append(
                p_stream_id text, p_expected bigint, p_created_at timestamptz,
                p_event_ids uuid[], p_types text[], p_data {t}[], p_metadata {t}[],
                p_flags smallint[], p_correlation uuid[], p_causation uuid[],
                OUT o_status smallint, OUT o_version bigint, OUT o_deleted boolean,
                OUT o_last_seq bigint, OUT o_detail text)
            LANGUAGE plpgsql AS $fn$
            DECLARE
                v_count integer := coalesce(cardinality(p_event_ids), 0);
                v_key bigint;
                v_constraint text;
            BEGIN
                o_status := {STATUS_OK};
                BEGIN
                    IF v_count = 0 THEN
                        SELECT st.version, st.deleted_at IS NOT NULL INTO o_version, o_deleted
                            FROM {s}.streams st WHERE st.stream_id = p_stream_id;
                        IF NOT {s}.evstore_expectation_holds(p_expected, o_version, o_deleted) THEN
                            o_status := {STATUS_EXPECTATION};  -- o_version NULL: no stream
                        ELSE
                            o_version := coalesce(o_version, 0);
                        END IF;
                        RETURN;
                    END IF;
                    -- Lock the stream row and reserve the versions in one statement.
                    UPDATE {s}.streams st SET version = st.version + v_count
                        WHERE st.stream_id = p_stream_id
                        RETURNING st.stream_key, st.version - v_count, st.deleted_at IS NOT NULL
                        INTO v_key, o_version, o_deleted;
                    IF NOT FOUND THEN
                        IF NOT {s}.evstore_expectation_holds(p_expected, NULL, NULL) THEN
                            o_status := {STATUS_EXPECTATION};
                            RETURN;
                        END IF;
                        -- A concurrent creator makes this wait for its commit, then skip.
                        INSERT INTO {s}.streams AS st (stream_id, version, created_at)
                            VALUES (p_stream_id, v_count, p_created_at)
                            ON CONFLICT (stream_id) DO NOTHING
                            RETURNING st.stream_key INTO v_key;
                        IF FOUND THEN
                            o_version := 0;
                            o_deleted := false;
                        ELSE
                            UPDATE {s}.streams st SET version = st.version + v_count
                                WHERE st.stream_id = p_stream_id
                                RETURNING st.stream_key, st.version - v_count,
                                          st.deleted_at IS NOT NULL
                                INTO v_key, o_version, o_deleted;
                            IF NOT FOUND THEN  -- created and hard deleted meanwhile
                                o_status := {STATUS_RETRY};
                                RETURN;
                            END IF;
                        END IF;
                    END IF;
                    IF NOT {s}.evstore_expectation_holds(p_expected, o_version, o_deleted) THEN
                        o_status := {STATUS_EXPECTATION};
                        RAISE EXCEPTION USING ERRCODE = 'EVS01';  -- undo the version bump
                    END IF;
                    WITH inserted AS (
                        INSERT INTO {s}.events (event_id, stream_key, stream_version, event_type,
                                data, metadata, flags, correlation_id, causation_id, created_at)
                            SELECT u.event_id, v_key, o_version + u.n, u.event_type, u.data,
                                   u.metadata, u.flags, u.correlation_id, u.causation_id,
                                   p_created_at
                            FROM unnest(p_event_ids, p_types, p_data, p_metadata, p_flags,
                                        p_correlation, p_causation) WITH ORDINALITY
                                 AS u(event_id, event_type, data, metadata, flags,
                                      correlation_id, causation_id, n)
                            ORDER BY u.n
                            RETURNING seq)
                    SELECT max(seq) INTO o_last_seq FROM inserted;
                    o_version := o_version + v_count;
                EXCEPTION
                    WHEN SQLSTATE 'EVS01' THEN
                        RETURN;
                    WHEN unique_violation THEN
                        GET STACKED DIAGNOSTICS v_constraint = CONSTRAINT_NAME;
                        o_last_seq := NULL;
                        IF v_constraint = 'events_event_id_unique' THEN
                            -- The first id, in the caller's order, stored or repeated.
                            SELECT u.event_id::text INTO o_detail FROM (
                                SELECT w.event_id, w.n, row_number() OVER (
                                        PARTITION BY w.event_id ORDER BY w.n) AS k
                                    FROM unnest(p_event_ids) WITH ORDINALITY AS w(event_id, n)
                                ) u
                                WHERE u.k > 1 OR EXISTS (
                                    SELECT 1 FROM {s}.events e WHERE e.event_id = u.event_id)
                                ORDER BY u.n LIMIT 1;
                            o_status := {STATUS_DUPLICATE};
                        ELSE
                            o_status := {STATUS_ERROR};
                            o_detail := SQLSTATE || ': ' || SQLERRM;
                        END IF;
                    WHEN lock_not_available OR deadlock_detected THEN
                        o_status := {STATUS_RETRY};
                        o_last_seq := NULL;
                    WHEN OTHERS THEN
                        o_status := {STATUS_ERROR};
                        o_detail := SQLSTATE || ': ' || SQLERRM;
                        o_last_seq := NULL;
                END;
            END
            $fn$"""

    def _append_batch_function(self) -> str:
        """``evstore_append_batch``: a group-commit batch of appends, set-based.

        The writer's fast path: one call for the whole batch, no subtransaction per append.
        It locks the batch's existing stream rows (in stream-id order), checks each append
        in batch order against the state left by the appends before it (so several appends
        to one stream behave as if run one after another), then creates the new streams,
        moves the versions and inserts every accepted event in one statement each. An
        append whose expectation fails or that reuses a stored id gets its status and
        writes nothing; its neighbours commit.

        It raises (and the writer falls back to ``evstore_append`` per append) when the
        batch needs what only the slow path handles: an event id shared by two appends of
        the batch (``EVS02``), a stream created meanwhile by another transaction
        (``EVS02``), a locked row (``lock_not_available``), or a concurrent duplicate id.

        Per append: stream id, expected code, created_at. Per event: append number
        (1-based), place in its append (1-based) and the event's columns. Returns one array
        per output, by append: status, version, deleted, last seq, detail.
        """
        s, t = self.s, self.column_type
        return f"""CREATE OR REPLACE FUNCTION {s}.evstore_append_batch(
                p_stream_ids text[], p_expected bigint[], p_created_at timestamptz[],
                p_append integer[], p_nth integer[],
                p_event_ids uuid[], p_types text[], p_data {t}[], p_metadata {t}[],
                p_flags smallint[], p_correlation uuid[], p_causation uuid[],
                OUT o_status smallint[], OUT o_version bigint[], OUT o_deleted boolean[],
                OUT o_last_seq bigint[], OUT o_detail text[])
            LANGUAGE plpgsql AS $fn$
            DECLARE
                v_n integer := cardinality(p_stream_ids);
                -- One entry per distinct stream of the batch.
                v_ids text[];
                v_keys bigint[];
                v_versions bigint[];
                v_deleted boolean[];
                v_start bigint[];
                v_created timestamptz[];
                -- One entry per append.
                v_dup_appends integer[];
                v_dup_ids text[];
                v_pass boolean[];
                v_first bigint[];
                v_last bigint[];
                v_count bigint[];
                v_slot integer[];
                v_append_keys bigint[];
                v_i integer;
                v_j integer;
                v_version bigint;
                v_is_deleted boolean;
                v_created_count integer;
                v_made_ids text[];
                v_made_keys bigint[];
            BEGIN
                IF EXISTS (SELECT FROM unnest(p_event_ids, p_append) AS u(id, a)
                           GROUP BY u.id HAVING count(DISTINCT u.a) > 1) THEN
                    RAISE EXCEPTION USING ERRCODE = 'EVS02';
                END IF;
                SELECT coalesce(array_agg(x.stream_id ORDER BY x.stream_id), '{{}}'),
                       coalesce(array_agg(x.stream_key ORDER BY x.stream_id), '{{}}'),
                       coalesce(array_agg(x.version ORDER BY x.stream_id), '{{}}'),
                       coalesce(array_agg(x.deleted ORDER BY x.stream_id), '{{}}')
                    INTO v_ids, v_keys, v_versions, v_deleted
                    FROM (SELECT st.stream_id, st.stream_key, st.version,
                                 st.deleted_at IS NOT NULL AS deleted
                            FROM {s}.streams st WHERE st.stream_id = ANY (p_stream_ids)
                            ORDER BY st.stream_id FOR UPDATE) x;
                v_start := v_versions;
                -- The first id of each append, in its order, already stored or repeated.
                SELECT coalesce(array_agg(d.a), '{{}}'), coalesce(array_agg(d.id::text), '{{}}')
                    INTO v_dup_appends, v_dup_ids
                    FROM (SELECT DISTINCT ON (x.a) x.a, x.id FROM (
                            SELECT u.id, u.a, u.k,
                                   row_number() OVER (PARTITION BY u.id ORDER BY u.k) AS r
                                FROM unnest(p_event_ids, p_append) WITH ORDINALITY AS u(id, a, k)
                            ) x
                          WHERE x.r > 1
                             OR EXISTS (SELECT FROM {s}.events e WHERE e.event_id = x.id)
                          ORDER BY x.a, x.k) d;
                SELECT array_agg(coalesce(c.n, 0) ORDER BY a.i) INTO v_count
                    FROM generate_series(1, v_n) AS a(i)
                    LEFT JOIN (SELECT u.a, count(*) AS n FROM unnest(p_append) AS u(a)
                               GROUP BY u.a) c ON c.a = a.i;
                o_status := array_fill(0::smallint, ARRAY[v_n]);
                o_version := array_fill(NULL::bigint, ARRAY[v_n]);
                o_deleted := array_fill(NULL::boolean, ARRAY[v_n]);
                o_detail := array_fill(NULL::text, ARRAY[v_n]);
                v_pass := array_fill(false, ARRAY[v_n]);
                v_first := array_fill(NULL::bigint, ARRAY[v_n]);
                v_last := array_fill(NULL::bigint, ARRAY[v_n]);
                v_slot := array_fill(NULL::integer, ARRAY[v_n]);
                v_created := array_fill(NULL::timestamptz, ARRAY[coalesce(cardinality(v_ids), 0)]);
                FOR v_i IN 1 .. v_n LOOP
                    v_j := array_position(v_ids, p_stream_ids[v_i]);
                    IF v_j IS NULL THEN  -- a stream to create, if an append is accepted
                        v_ids := v_ids || p_stream_ids[v_i];
                        v_keys := v_keys || NULL::bigint;
                        v_versions := v_versions || NULL::bigint;
                        v_deleted := v_deleted || NULL::boolean;
                        v_start := v_start || NULL::bigint;
                        v_created := v_created || NULL::timestamptz;
                        v_j := cardinality(v_ids);
                    END IF;
                    v_slot[v_i] := v_j;
                    v_version := v_versions[v_j];
                    v_is_deleted := v_deleted[v_j];
                    IF (CASE  -- evstore_expectation_holds, inlined: this loop is hot
                        WHEN coalesce(v_is_deleted, false) THEN true
                        WHEN p_expected[v_i] = {ANY} THEN false
                        WHEN p_expected[v_i] = {NO_STREAM} THEN coalesce(v_version, 0) <> 0
                        WHEN p_expected[v_i] = {STREAM_EXISTS} THEN v_version IS NULL
                        ELSE p_expected[v_i] <> coalesce(v_version, 0)
                    END) THEN
                        o_status[v_i] := {STATUS_EXPECTATION};
                        o_version[v_i] := v_version;
                        o_deleted[v_i] := v_is_deleted;
                    ELSIF v_count[v_i] = 0 THEN
                        o_version[v_i] := coalesce(v_version, 0);
                    ELSIF v_i = ANY (v_dup_appends) THEN
                        o_status[v_i] := {STATUS_DUPLICATE};
                        o_detail[v_i] := v_dup_ids[array_position(v_dup_appends, v_i)];
                    ELSE
                        v_pass[v_i] := true;
                        v_first[v_i] := coalesce(v_version, 0);
                        v_last[v_i] := v_first[v_i] + v_count[v_i];
                        v_versions[v_j] := v_last[v_i];
                        v_deleted[v_j] := false;
                        v_created[v_j] := coalesce(v_created[v_j], p_created_at[v_i]);
                        o_version[v_i] := v_last[v_i];
                    END IF;
                END LOOP;
                -- New streams (created by an accepted append); someone else creating one
                -- meanwhile sends the batch to the slow path.
                WITH made AS (
                    INSERT INTO {s}.streams AS st (stream_id, version, created_at)
                        SELECT m.id, m.version, m.created FROM unnest(v_ids, v_keys, v_versions,
                                v_created) AS m(id, key, version, created)
                        WHERE m.key IS NULL AND m.version IS NOT NULL
                        ON CONFLICT (stream_id) DO NOTHING
                        RETURNING st.stream_id, st.stream_key)
                SELECT count(*), array_agg(made.stream_id), array_agg(made.stream_key)
                    INTO v_created_count, v_made_ids, v_made_keys FROM made;
                IF v_created_count <> (SELECT count(*) FROM unnest(v_keys, v_versions) AS m(k, v)
                                        WHERE m.k IS NULL AND m.v IS NOT NULL) THEN
                    RAISE EXCEPTION USING ERRCODE = 'EVS02';
                END IF;
                FOR v_i IN 1 .. coalesce(cardinality(v_made_ids), 0) LOOP
                    v_keys[array_position(v_ids, v_made_ids[v_i])] := v_made_keys[v_i];
                END LOOP;
                -- By key through the primary key index: a join would scan the (often
                -- bloated, hot-updated) streams table.
                UPDATE {s}.streams st
                    SET version = v_versions[array_position(v_keys, st.stream_key)]
                    WHERE st.stream_key = ANY (ARRAY(
                        SELECT m.key FROM unnest(v_keys, v_versions, v_start)
                            AS m(key, version, start)
                        WHERE m.start IS NOT NULL AND m.version <> m.start));
                SELECT array_agg(v_keys[v_slot[a.i]] ORDER BY a.i) INTO v_append_keys
                    FROM generate_series(1, v_n) AS a(i);
                WITH inserted AS (
                    INSERT INTO {s}.events (event_id, stream_key, stream_version, event_type,
                            data, metadata, flags, correlation_id, causation_id, created_at)
                        SELECT u.event_id, v_append_keys[u.a], v_first[u.a] + u.nth,
                               u.event_type, u.data, u.metadata, u.flags, u.correlation_id,
                               u.causation_id, p_created_at[u.a]
                        FROM unnest(p_append, p_nth, p_event_ids, p_types, p_data, p_metadata,
                                    p_flags, p_correlation, p_causation) WITH ORDINALITY
                             AS u(a, nth, event_id, event_type, data, metadata, flags,
                                  correlation_id, causation_id, k)
                        WHERE v_pass[u.a]
                        ORDER BY u.k
                        RETURNING seq, stream_key, stream_version)
                SELECT array_agg(i.seq ORDER BY a.i) INTO o_last_seq
                    FROM generate_series(1, v_n) AS a(i)
                    LEFT JOIN inserted i ON v_pass[a.i] AND i.stream_key = v_append_keys[a.i]
                                        AND i.stream_version = v_last[a.i];
            END
            $fn$"""

    def _link_function(self) -> str:
        """``evstore_link``: link existing events into a stream, all or nothing."""
        s = self.s
        return f"""CREATE OR REPLACE FUNCTION {s}.evstore_link(
                p_stream_id text, p_expected bigint, p_event_ids uuid[],
                OUT o_status smallint, OUT o_version bigint, OUT o_deleted boolean,
                OUT o_position bigint, OUT o_detail text)
            LANGUAGE plpgsql AS $fn$
            DECLARE
                v_count integer := coalesce(cardinality(p_event_ids), 0);
                v_key bigint;
            BEGIN
                o_status := {STATUS_OK};
                BEGIN
                    SELECT st.stream_key, st.version, st.deleted_at IS NOT NULL
                        INTO v_key, o_version, o_deleted
                        FROM {s}.streams st WHERE st.stream_id = p_stream_id
                        FOR UPDATE;
                    IF NOT {s}.evstore_expectation_holds(p_expected, o_version, o_deleted) THEN
                        o_status := {STATUS_EXPECTATION};
                        RETURN;
                    END IF;
                    IF v_count = 0 THEN
                        o_version := coalesce(o_version, 0);
                        RETURN;
                    END IF;
                    SELECT string_agg(w.event_id::text, ',' ORDER BY w.n) INTO o_detail
                        FROM unnest(p_event_ids) WITH ORDINALITY AS w(event_id, n)
                        WHERE NOT EXISTS (
                            SELECT 1 FROM {s}.events e WHERE e.event_id = w.event_id);
                    IF o_detail IS NOT NULL THEN
                        o_status := {STATUS_NOT_FOUND};
                        RETURN;
                    END IF;
                    -- Repeated in the call, the target's own event, or already linked there.
                    SELECT u.event_id::text INTO o_detail FROM (
                        SELECT w.event_id, w.n, e.seq, e.stream_key, row_number() OVER (
                                PARTITION BY w.event_id ORDER BY w.n) AS k
                            FROM unnest(p_event_ids) WITH ORDINALITY AS w(event_id, n)
                            JOIN {s}.events e ON e.event_id = w.event_id
                        ) u
                        WHERE u.k > 1 OR u.stream_key = v_key OR EXISTS (
                            SELECT 1 FROM {s}.links l
                            WHERE l.stream_key = v_key AND l.seq = u.seq)
                        ORDER BY u.n LIMIT 1;
                    IF o_detail IS NOT NULL THEN
                        o_status := {STATUS_DUPLICATE};
                        RETURN;
                    END IF;
                    IF v_key IS NULL THEN
                        INSERT INTO {s}.streams AS st (stream_id, version)
                            VALUES (p_stream_id, 0)
                            ON CONFLICT (stream_id) DO NOTHING
                            RETURNING st.stream_key INTO v_key;
                        IF NOT FOUND THEN  -- created concurrently: check everything again
                            o_status := {STATUS_RETRY};
                            RETURN;
                        END IF;
                        o_version := 0;
                        o_deleted := false;
                    END IF;
                    UPDATE {s}.streams st SET version = st.version + v_count
                        WHERE st.stream_key = v_key;
                    INSERT INTO {s}.links (stream_key, stream_version, seq)
                        SELECT v_key, o_version + w.n, e.seq
                        FROM unnest(p_event_ids) WITH ORDINALITY AS w(event_id, n)
                        JOIN {s}.events e ON e.event_id = w.event_id;
                    o_version := o_version + v_count;
                    -- Linked events are readable in the stream as soon as this commits (they
                    -- have positions already): wake followers in other processes, as a
                    -- sequencer cycle does. Delivered at commit, dropped on rollback.
                    PERFORM pg_notify({quote_literal(self.channel)}, 'link');
                    SELECT p.position INTO o_position
                        FROM {s}.events e JOIN {s}.all_positions p ON p.seq = e.seq
                        WHERE e.event_id = p_event_ids[v_count];
                EXCEPTION
                    WHEN unique_violation OR lock_not_available OR deadlock_detected THEN
                        -- A concurrent link of the same ids or creation of the stream.
                        o_status := {STATUS_RETRY};
                    WHEN OTHERS THEN
                        o_status := {STATUS_ERROR};
                        o_detail := SQLSTATE || ': ' || SQLERRM;
                END;
            END
            $fn$"""

    def _sequence_function(self) -> str:
        """``evstore_sequence``: one sequencer cycle, then the positions of ``p_waiting``.

        Returns the highest position ever assigned, for each seq in ``p_waiting`` its
        position (NULL: none yet; -1: the event no longer exists), and how many rows this
        call numbered.
        """
        s = self.s
        # Rows still to number are those whose xid the previous cycle's snapshot did not see
        # as finished: xid in its in-progress list, or at/above its xmax (see module doc).
        # The last test makes numbering a row twice impossible even if the recorded snapshot
        # is reset (after a restore, say). It is a correlated scalar subquery on purpose:
        # one index probe per candidate. NOT EXISTS would be planned as a hash anti-join
        # reading all of all_positions on every cycle.
        pending = f"""(e.xid >= pg_snapshot_xmax(v_snapshot)
                        OR e.xid = ANY (ARRAY(SELECT pg_snapshot_xip(v_snapshot))))
                    AND (SELECT p.position FROM {s}.all_positions p WHERE p.seq = e.seq) IS NULL"""
        return f"""CREATE OR REPLACE FUNCTION {s}.evstore_sequence(p_waiting bigint[],
                OUT o_last_position bigint, OUT o_positions bigint[], OUT o_assigned bigint)
            LANGUAGE plpgsql AS $fn$
            DECLARE
                v_snapshot pg_snapshot;
                v_last bigint;
                v_new_snapshot pg_snapshot;
            BEGIN
                o_assigned := 0;
                -- Cheap check first, without the lock: is any committed row unnumbered?
                SELECT st.snapshot INTO v_snapshot FROM {s}.sequencer_state st;
                IF EXISTS (SELECT 1 FROM {s}.events e WHERE {pending}) THEN
                    -- An advisory lock gives this transaction no xid, so the snapshot below
                    -- is not held back by the sequencer itself. Each statement after it
                    -- takes a fresh snapshot (READ COMMITTED), seeing earlier cycles.
                    PERFORM {self._sequencer_lock_call()};
                    SELECT st.snapshot, st.last_position INTO v_snapshot, v_last
                        FROM {s}.sequencer_state st;
                    -- pg_current_snapshot() is this statement's own snapshot: exactly the
                    -- one deciding which rows the INSERT sees.
                    WITH current AS MATERIALIZED (
                        SELECT pg_current_snapshot() AS snapshot
                    ), numbered AS (
                        INSERT INTO {s}.all_positions (position, seq)
                        SELECT v_last + row_number() OVER (ORDER BY c.block_start, c.seq), c.seq
                        FROM (
                            -- One block per (transaction, stream): an append's events stay
                            -- contiguous even when concurrent inserts interleave their seqs.
                            SELECT e.seq,
                                   min(e.seq) OVER (PARTITION BY e.xid, e.stream_key)
                                       AS block_start
                            FROM {s}.events e
                            WHERE {pending}
                        ) c
                        RETURNING 1
                    )
                    SELECT (SELECT snapshot FROM current), (SELECT count(*) FROM numbered)
                        INTO v_new_snapshot, o_assigned;
                    -- Nothing numbered (another process's cycle, queued before this one on
                    -- the lock, took the rows): write nothing, so this transaction gets no
                    -- xid and its commit no fsync. Keeping the older snapshot is safe: no
                    -- row it leaves pending is visible and unnumbered now.
                    IF o_assigned > 0 THEN
                        UPDATE {s}.sequencer_state
                            SET snapshot = v_new_snapshot,
                                last_position = last_position + o_assigned;
                        PERFORM pg_notify({quote_literal(self.channel)},
                                          (v_last + o_assigned)::text);
                    END IF;
                END IF;
                SELECT st.last_position INTO o_last_position FROM {s}.sequencer_state st;
                o_positions := ARRAY(
                    SELECT coalesce(p.position, CASE WHEN EXISTS (
                            SELECT 1 FROM {s}.events e WHERE e.seq = w.seq) THEN NULL ELSE -1 END)
                    FROM unnest(p_waiting) WITH ORDINALITY AS w(seq, n)
                    LEFT JOIN {s}.all_positions p ON p.seq = w.seq
                    ORDER BY w.n);
            END
            $fn$"""

    # -- statements ------------------------------------------------------------------

    @property
    def append(self) -> str:
        return f"SELECT * FROM {self.s}.evstore_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"

    @property
    def append_batch(self) -> str:
        return (
            f"SELECT * FROM {self.s}.evstore_append_batch"
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
                DELETE FROM {s}.events WHERE stream_key = $1 RETURNING seq
            ), positions AS (
                DELETE FROM {s}.all_positions WHERE seq IN (SELECT seq FROM gone)
            ), linked AS (
                DELETE FROM {s}.links WHERE stream_key = $1 OR seq IN (SELECT seq FROM gone)
            )
            DELETE FROM {s}.streams WHERE stream_key = $1"""

    @property
    def stream_row(self) -> str:
        return f"SELECT version, created_at, deleted_at FROM {self.s}.streams WHERE stream_id = $1"

    def read_stream(self, *, forward: bool) -> str:
        """Params: $1 stream_key, $2 lowest number, $3 highest number, $4 count,
        $5 oldest created_at or NULL. Only sequenced events are returned."""
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
                        SELECT own.stream_version AS n, own.seq FROM {s}.events own
                            WHERE own.stream_key = ms.stream_key
                        UNION ALL
                        SELECT l.stream_version, l.seq FROM {s}.links l
                            WHERE l.stream_key = ms.stream_key
                    ) entry
                    JOIN {s}.events e ON e.seq = entry.seq
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
        return f"""SELECT entry.n, e.event_id, origin.stream_id, e.stream_version, p.position,
                e.event_type, e.data, e.metadata, e.flags, e.correlation_id, e.causation_id,
                e.created_at
            FROM (
                (SELECT own.stream_version AS n, own.seq FROM {s}.events own
                    WHERE own.stream_key = {key} AND own.stream_version {near}
                      AND own.stream_version + 0 {far}
                      AND ({cutoff} IS NULL OR own.created_at >= {cutoff})
                      AND EXISTS (SELECT FROM {s}.all_positions ap WHERE ap.seq = own.seq)
                    ORDER BY own.stream_version {order} LIMIT {count})
                UNION ALL
                (SELECT l.stream_version, l.seq FROM {s}.links l
                    JOIN {s}.events linked ON linked.seq = l.seq
                    WHERE l.stream_key = {key} AND l.stream_version {near}
                      AND l.stream_version + 0 {far}
                      AND ({cutoff} IS NULL OR linked.created_at >= {cutoff})
                      AND EXISTS (SELECT FROM {s}.all_positions ap WHERE ap.seq = l.seq)
                    ORDER BY l.stream_version {order} LIMIT {count})
            ) entry
            JOIN {s}.events e ON e.seq = entry.seq
            JOIN {s}.all_positions p ON p.seq = e.seq
            JOIN {s}.streams origin ON origin.stream_key = e.stream_key
            ORDER BY entry.n {order}
            LIMIT {count}"""

    def read_all(self, *, forward: bool) -> str:
        """Params: $1 lowest position, $2 highest position, $3 count."""
        s = self.s
        order = "ASC" if forward else "DESC"
        return f"""SELECT p.position, e.event_id, origin.stream_id, e.stream_version, p.position,
                e.event_type, e.data, e.metadata, e.flags, e.correlation_id, e.causation_id,
                e.created_at
            FROM {s}.all_positions p
            JOIN {s}.events e ON e.seq = p.seq
            JOIN {s}.streams origin ON origin.stream_key = e.stream_key
            WHERE p.position BETWEEN $1 AND $2
            ORDER BY p.position {order}
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
