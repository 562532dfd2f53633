"""The plpgsql functions of the PostgreSQL backend, rendered for one schema.

Functions are code, not data: every migration run ends by (re)creating all of them in their
current form (:func:`create_functions`), so a schema's functions always match the code that
migrated it. The tables they work on are described in :mod:`._sql`.

``evstore_write``
    A group-commit batch of appends in one statement (and, called on its own, one
    transaction): the set-based checks, then the events, numbered in the same transaction
    when the sequencer lock is free. The writer's fast path.
``evstore_append``
    One append in its own subtransaction, never numbered: appends inside a caller's
    transaction (``conn=``) and batches the fast path refused, run append by append.
``evstore_link``
    Links existing events into a stream, all or nothing.
``evstore_sequence``
    A sequencer cycle: numbers every committed event still without a position, then looks
    up the positions of the events appenders wait for.
``evstore_number_pending``
    The numbering step both of the above run while holding the sequencer lock.
``evstore_expectation_holds``
    The expected-version table in SQL (mirrors
    :func:`evstore.backends.rules.check_expected_version`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evstore.backends.postgres._codes import (
    ANY,
    NO_STREAM,
    STATUS_DUPLICATE,
    STATUS_ERROR,
    STATUS_EXPECTATION,
    STATUS_NOT_FOUND,
    STATUS_OK,
    STATUS_RETRY,
    STREAM_EXISTS,
)

if TYPE_CHECKING:
    from evstore.backends.postgres._sql import Sql

__all__ = ["BATCH_LOCK_TIMEOUT", "FUNCTION_NAMES", "create_functions", "pending_condition"]

SEQUENCER_LOCK_WAIT = "20ms"
"""How long a batch waits for a busy sequencer lock before it stores its events without
positions (see ``evstore_write``). The holder is usually another process's batch in its
commit, so a wait is short; waiting is much cheaper than the way round, which costs every
event an update and a second durable commit (``benchmarks/run.py --only W3``, 8 processes
with 4 writers each on this 2-core machine: about 3,300 to 4,200 appends/s when waiting up
to 20 ms or without a bound, 1,700 to 2,000 with a bound of 2 or 5 ms)."""

BATCH_LOCK_TIMEOUT = "100ms"
"""How long an append in a batch may wait for a stream row locked by someone else's open
transaction before the batch gives up and runs append by append (where only that append
waits, in the writer's slow lane)."""


def create_functions(sql: Sql) -> list[str]:
    """``CREATE OR REPLACE`` statements for every function, dependencies first."""
    return [build(sql) for build in _BUILDERS.values()]


def _expectation_function(sql: Sql) -> str:
    # p_version is NULL when the stream does not exist. Mirrors rules.check_expected_version
    # (reference §1.2.1); when it fails, Python re-runs that check to raise the error.
    return f"""CREATE OR REPLACE FUNCTION {sql.s}.evstore_expectation_holds(
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


def pending_condition(snapshot: str) -> str:
    """Events still to number, as of the previous cycle's ``snapshot`` (an SQL expression).

    An event without a position whose writing transaction that snapshot did not see as
    finished: xid in its in-progress list, or at or above its xmax. Every other event
    without a position was either invisible to that cycle (rolled back, so never seen
    again) or is being numbered right now. Both tests are probes of the partial index
    ``events_unnumbered``, so a cycle costs in proportion to the recent unnumbered events:
    rows numbered long ago, even those whose dead versions vacuum has not removed yet,
    carry older xids and are never visited.
    """
    return f"""e.position IS NULL
        AND (e.xid >= pg_snapshot_xmax({snapshot})
             OR e.xid = ANY (ARRAY(SELECT pg_snapshot_xip({snapshot}))))"""


def _number_pending_function(sql: Sql) -> str:
    """``evstore_number_pending``: number the committed events without a position.

    The caller holds the sequencer lock. Positions continue after ``last_position``, in
    (stream, version) order: a stream's events in version order, an append's events
    contiguous. Only committed events are visible to the statement, so a transaction still
    open keeps its events out of this cycle and gets later positions when it commits. The
    statement's snapshot is recorded for the next cycle (see :func:`pending_condition`).

    Events are claimed with ``FOR NO KEY UPDATE SKIP LOCKED`` and numbered by event id,
    and a stream with an event someone else has locked — a hard delete in a transaction
    still open, say — is left whole for a later cycle: waiting for that lock while holding
    the sequencer lock would stop every append's numbering for as long as that transaction
    lasts, and numbering part of the stream would break its order if the delete rolled
    back. While a stream is left, the recorded snapshot does not move, so its events stay
    pending until a cycle takes them.

    Returns the last position assigned so far (stored in ``sequencer_state``) and how many
    events this call numbered.
    """
    s = sql.s
    return f"""CREATE OR REPLACE FUNCTION {s}.evstore_number_pending(
            OUT o_last_position bigint, OUT o_assigned bigint)
        LANGUAGE plpgsql AS $fn$
        DECLARE
            v_snapshot pg_snapshot;
            v_left bigint;
            v_new_snapshot pg_snapshot;
        BEGIN
            o_assigned := 0;
            SELECT st.snapshot, st.last_position INTO v_snapshot, o_last_position
                FROM {s}.sequencer_state st;
            IF NOT EXISTS (SELECT FROM {s}.events e WHERE {pending_condition("v_snapshot")})
            THEN
                RETURN;
            END IF;
            -- pg_current_snapshot() is this statement's own snapshot: exactly the one that
            -- decides which events the scans below see.
            WITH current AS MATERIALIZED (
                SELECT pg_current_snapshot() AS snapshot
            ), candidates AS MATERIALIZED (
                SELECT e.event_id, e.stream_key FROM {s}.events e
                WHERE {pending_condition("v_snapshot")}
            ), claimed AS MATERIALIZED (
                SELECT e.event_id, e.stream_key, e.stream_version FROM {s}.events e
                WHERE {pending_condition("v_snapshot")}
                FOR NO KEY UPDATE SKIP LOCKED
            ), left_over AS MATERIALIZED (  -- streams with an event locked by someone else
                SELECT DISTINCT c.stream_key FROM candidates c
                WHERE NOT EXISTS (SELECT FROM claimed k WHERE k.event_id = c.event_id)
            ), pending AS MATERIALIZED (
                SELECT k.event_id,
                       row_number() OVER (ORDER BY k.stream_key, k.stream_version) AS n
                FROM claimed k
                WHERE NOT EXISTS (SELECT FROM left_over l WHERE l.stream_key = k.stream_key)
            ), numbered AS (
                UPDATE {s}.events e SET position = o_last_position + p.n
                FROM pending p
                WHERE e.event_id = p.event_id
                RETURNING 1
            )
            SELECT (SELECT snapshot FROM current), (SELECT count(*) FROM numbered),
                   (SELECT count(*) FROM left_over)
                INTO v_new_snapshot, o_assigned, v_left;
            -- Nothing numbered (another cycle, queued before this one on the lock, took
            -- the events): write nothing, so a lone cycle gets no xid and no fsync. The
            -- older snapshot stays valid: no event it leaves pending is visible and
            -- unnumbered now.
            IF o_assigned > 0 THEN
                o_last_position := o_last_position + o_assigned;
                UPDATE {s}.sequencer_state
                    SET snapshot = CASE WHEN v_left = 0 THEN v_new_snapshot ELSE snapshot END,
                        last_position = o_last_position;
            END IF;
        END
        $fn$"""


def _write_function(sql: Sql) -> str:
    """``evstore_write``: a group-commit batch of appends, set-based, numbered at once.

    The writer's fast path, run as a statement of its own (so one round trip and one
    commit for the whole batch). It locks the batch's existing stream rows (in stream-id
    order), checks each append in batch order against the state left by the appends before
    it (so several appends to one stream behave as if run one after another), then creates
    the new streams, moves the versions and inserts every accepted event with one statement
    each. An append whose expectation fails gets its status and writes nothing; its
    neighbours commit. A batch of one append (the common case when load is light) takes a
    shorter way to the same result: one statement locks its stream row, checks the
    expectation and reserves the versions.

    Once the stream rows are locked it takes the sequencer lock, waiting for it at most
    :data:`SEQUENCER_LOCK_WAIT`, and the events get their positions in this transaction:
    first every committed event still without one (:func:`_number_pending_function`), then
    the batch's, so one durable commit stores and numbers them. When the lock stays busy
    longer than that, the events are stored without a position, for the next sequencer
    cycle: appends never queue behind each other's commits for long.

    It raises, and the writer runs the batch again append by append, when the batch needs
    what only that path reports or waits for: an event id repeated in the batch or already
    stored (``unique_violation``), a stream created meanwhile by another transaction
    (``EVS02``), a stream row locked for longer than the lock timeout.

    Per append: stream id, expected code, created_at. Per event: append number (1-based),
    place in its append (1-based) and the event's columns. Encoding arrays is much of an
    append's client-side cost, so arrays that say nothing may be NULL: the append numbers
    and places when the batch is one append, metadata, correlation and causation ids when
    none is set, flags when all are 0. Returns one array per output, by append: status,
    version, deleted, position of the last event (NULL: not numbered yet, or nothing
    written), detail.
    """
    s, t = sql.s, sql.column_type
    return f"""CREATE OR REPLACE FUNCTION {s}.evstore_write(
            p_stream_ids text[], p_expected bigint[], p_created_at timestamptz[],
            p_append integer[], p_nth integer[],
            p_event_ids uuid[], p_types text[], p_data {t}[], p_metadata {t}[],
            p_flags smallint[], p_correlation uuid[], p_causation uuid[],
            OUT o_status smallint[], OUT o_version bigint[], OUT o_deleted boolean[],
            OUT o_position bigint[], OUT o_detail text[])
        LANGUAGE plpgsql SET lock_timeout = '{BATCH_LOCK_TIMEOUT}' AS $fn$
        DECLARE
            v_n integer := cardinality(p_stream_ids);
            v_events integer := cardinality(p_event_ids);
            -- One entry per distinct stream of the batch.
            v_ids text[];
            v_keys bigint[];
            v_versions bigint[];
            v_deleted boolean[];
            v_start bigint[];
            v_created timestamptz[];
            -- One entry per append.
            v_count bigint[];
            v_pass boolean[];
            v_first bigint[];
            v_skip bigint[];
            v_end bigint[];
            v_slot integer[];
            v_append_keys bigint[];
            v_i integer;
            v_j integer;
            v_key bigint;
            v_version bigint;
            v_is_deleted boolean;
            v_seen bigint := 0;
            v_rejected bigint := 0;
            v_created_count integer;
            v_made_ids text[];
            v_made_keys bigint[];
            v_numbered boolean;
            v_snapshot pg_snapshot;
            v_last bigint;
            v_xid xid8;
        BEGIN
            o_status := array_fill(0::smallint, ARRAY[v_n]);
            o_version := array_fill(NULL::bigint, ARRAY[v_n]);
            o_deleted := array_fill(NULL::boolean, ARRAY[v_n]);
            o_position := array_fill(NULL::bigint, ARRAY[v_n]);
            o_detail := array_fill(NULL::text, ARRAY[v_n]);
            IF v_n = 1 THEN
{_indent(_lone_append(sql), 16)}
            ELSE
{_indent(_set_based_appends(sql), 16)}
            END IF;
            -- Only now, with the stream rows locked: any earlier version of these streams
            -- that another transaction wrote has committed, so the numbering below sees it
            -- and gives it a lower position than this batch's events.
            v_numbered := pg_try_advisory_xact_lock({sql.sequencer_lock_keys});
            IF NOT v_numbered THEN
                -- Another numbering step holds the lock, usually a batch of another
                -- process in its commit: waiting for it a moment costs less than a
                -- sequencer cycle after this one. A longer wait means a busy lock: go on
                -- without it, so appends never queue behind each other's commits for long.
                BEGIN
                    PERFORM set_config('lock_timeout', '{SEQUENCER_LOCK_WAIT}', true);
                    PERFORM pg_advisory_xact_lock({sql.sequencer_lock_keys});
                    v_numbered := true;
                EXCEPTION WHEN lock_not_available THEN
                    v_numbered := false;
                END;
                PERFORM set_config('lock_timeout', '{BATCH_LOCK_TIMEOUT}', true);
            END IF;
            IF v_numbered THEN
                SELECT st.snapshot, st.last_position INTO v_snapshot, v_last
                    FROM {s}.sequencer_state st;
                IF EXISTS (SELECT FROM {s}.events e WHERE {pending_condition("v_snapshot")})
                THEN
                    SELECT p.o_last_position INTO v_last FROM {s}.evstore_number_pending() p;
                END IF;
            ELSE
                v_xid := pg_current_xact_id();
            END IF;
            -- unnest pads the arrays the caller left NULL (see the docstring) with NULLs.
            INSERT INTO {s}.events (event_id, stream_key, stream_version, position, xid,
                    event_type, data, metadata, flags, correlation_id, causation_id,
                    created_at)
                SELECT u.event_id, v_append_keys[u.a], v_first[u.a] + u.nth,
                       v_last + u.k - v_skip[u.a], v_xid, u.event_type, u.data, u.metadata,
                       u.flags, u.correlation_id, u.causation_id, p_created_at[u.a]
                FROM (SELECT coalesce(w.a, 1) AS a, coalesce(w.nth, w.k::integer) AS nth,
                             w.event_id, w.event_type, w.data, w.metadata,
                             coalesce(w.flags, 0::smallint) AS flags, w.correlation_id,
                             w.causation_id, w.k
                      FROM unnest(p_append, p_nth, p_event_ids, p_types, p_data, p_metadata,
                                  p_flags, p_correlation, p_causation) WITH ORDINALITY
                           AS w(a, nth, event_id, event_type, data, metadata, flags,
                                correlation_id, causation_id, k)) u
                WHERE v_pass[u.a];
            IF v_numbered THEN
                FOR v_i IN 1 .. v_n LOOP
                    IF v_pass[v_i] THEN
                        o_position[v_i] := v_last + v_end[v_i] - v_skip[v_i];
                    END IF;
                END LOOP;
                v_last := v_last + v_events - v_rejected;
                UPDATE {s}.sequencer_state SET last_position = v_last;
                PERFORM pg_notify({sql.channel_literal}, v_last::text);
            END IF;
        END
        $fn$"""


def _indent(block: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line if line else line for line in block.splitlines())


def _lone_append(sql: Sql) -> str:
    """``evstore_write``'s way for a batch of one append: lock, check and reserve at once.

    Ends with the variables the storing part reads, or returns (nothing to write).
    """
    s = sql.s
    holds_on = """CASE p_expected[1]
                WHEN {any} THEN true
                WHEN {no_stream} THEN {version} = 0
                WHEN {exists} THEN true
                ELSE {version} = p_expected[1]
            END"""
    holds = holds_on.format(
        any=ANY, no_stream=NO_STREAM, exists=STREAM_EXISTS, version="st.version"
    )
    return f"""-- Lock the stream row, check the expectation and reserve the versions at once.
UPDATE {s}.streams st SET version = st.version + v_events
    WHERE st.stream_id = p_stream_ids[1] AND st.deleted_at IS NULL AND v_events > 0
      AND {holds}
    RETURNING st.stream_key, st.version - v_events INTO v_key, v_version;
IF NOT FOUND THEN
    -- Refused, missing, or an empty append: decide on the locked row (a state read
    -- without the lock could already pass the expectation the UPDATE refused).
    SELECT st.stream_key, st.version, st.deleted_at IS NOT NULL
        INTO v_key, v_version, v_is_deleted
        FROM {s}.streams st WHERE st.stream_id = p_stream_ids[1] FOR UPDATE;
    IF NOT {s}.evstore_expectation_holds(p_expected[1], v_version, v_is_deleted) THEN
        o_status[1] := {STATUS_EXPECTATION};
        o_version[1] := v_version;
        o_deleted[1] := v_is_deleted;
        RETURN;
    END IF;
    IF v_events = 0 THEN
        o_version[1] := coalesce(v_version, 0);
        RETURN;
    END IF;
    IF v_key IS NULL THEN
        INSERT INTO {s}.streams AS st (stream_id, version, created_at)
            VALUES (p_stream_ids[1], v_events, p_created_at[1])
            ON CONFLICT (stream_id) DO NOTHING
            RETURNING st.stream_key INTO v_key;
        IF NOT FOUND THEN  -- created meanwhile by another transaction: the slow path
            RAISE EXCEPTION USING ERRCODE = 'EVS02';
        END IF;
        v_version := 0;
    ELSE  -- the expectation held once the row was locked (it changed meanwhile)
        UPDATE {s}.streams st SET version = st.version + v_events
            WHERE st.stream_key = v_key;
    END IF;
END IF;
v_pass := ARRAY[true];
v_first := ARRAY[v_version];
v_skip := ARRAY[0::bigint];
v_end := ARRAY[v_events::bigint];
v_append_keys := ARRAY[v_key];
o_version[1] := v_version + v_events;"""


def _set_based_appends(sql: Sql) -> str:
    """``evstore_write``'s way for a batch of several appends, set-based.

    Ends with the variables the storing part reads, or returns (nothing to write).
    """
    s = sql.s
    return f"""SELECT coalesce(array_agg(x.stream_id ORDER BY x.stream_id), '{{}}'),
       coalesce(array_agg(x.stream_key ORDER BY x.stream_id), '{{}}'),
       coalesce(array_agg(x.version ORDER BY x.stream_id), '{{}}'),
       coalesce(array_agg(x.deleted ORDER BY x.stream_id), '{{}}')
    INTO v_ids, v_keys, v_versions, v_deleted
    FROM (SELECT st.stream_id, st.stream_key, st.version,
                 st.deleted_at IS NOT NULL AS deleted
            FROM {s}.streams st WHERE st.stream_id = ANY (p_stream_ids)
            ORDER BY st.stream_id FOR UPDATE) x;
v_start := v_versions;
SELECT array_agg(coalesce(c.n, 0) ORDER BY a.i) INTO v_count
    FROM generate_series(1, v_n) AS a(i)
    LEFT JOIN (SELECT u.a, count(*) AS n FROM unnest(p_append) AS u(a)
               GROUP BY u.a) c ON c.a = a.i;
v_pass := array_fill(false, ARRAY[v_n]);
v_first := array_fill(NULL::bigint, ARRAY[v_n]);
v_skip := array_fill(0::bigint, ARRAY[v_n]);
v_end := array_fill(0::bigint, ARRAY[v_n]);
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
    v_seen := v_seen + v_count[v_i];
    v_end[v_i] := v_seen;
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
        v_rejected := v_rejected + v_count[v_i];
    ELSIF v_count[v_i] = 0 THEN
        o_version[v_i] := coalesce(v_version, 0);
    ELSE
        v_pass[v_i] := true;
        v_skip[v_i] := v_rejected;
        v_first[v_i] := coalesce(v_version, 0);
        o_version[v_i] := v_first[v_i] + v_count[v_i];
        v_versions[v_j] := o_version[v_i];
        v_deleted[v_j] := false;
        v_created[v_j] := coalesce(v_created[v_j], p_created_at[v_i]);
    END IF;
END LOOP;
IF v_rejected = v_events THEN
    RETURN;  -- nothing to write
END IF;
-- New streams (created by an accepted append); someone else creating one meanwhile sends
-- the batch to the slow path.
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
-- By key through the primary key index: a join would scan the (often bloated,
-- hot-updated) streams table.
UPDATE {s}.streams st
    SET version = v_versions[array_position(v_keys, st.stream_key)]
    WHERE st.stream_key = ANY (ARRAY(
        SELECT m.key FROM unnest(v_keys, v_versions, v_start) AS m(key, version, start)
        WHERE m.start IS NOT NULL AND m.version <> m.start));
SELECT array_agg(v_keys[v_slot[a.i]] ORDER BY a.i) INTO v_append_keys
    FROM generate_series(1, v_n) AS a(i);"""


def _append_function(sql: Sql) -> str:
    """``evstore_append``: one append, checked and written in its own subtransaction.

    The ``BEGIN ... EXCEPTION`` block is the subtransaction: a failed append rolls back
    only itself, so a batch run append by append keeps its other appends. Lock waits end
    with ``STATUS_RETRY`` (the writer sets ``lock_timeout``) instead of stalling the batch.
    Its events are stored without a position (a sequencer cycle numbers them once the
    transaction commits), so it is safe inside a caller's transaction: it never holds the
    sequencer lock.
    """
    s, t = sql.s, sql.column_type
    return f"""CREATE OR REPLACE FUNCTION {s}.evstore_append(
            p_stream_id text, p_expected bigint, p_created_at timestamptz,
            p_event_ids uuid[], p_types text[], p_data {t}[], p_metadata {t}[],
            p_flags smallint[], p_correlation uuid[], p_causation uuid[],
            OUT o_status smallint, OUT o_version bigint, OUT o_deleted boolean,
            OUT o_position bigint, OUT o_detail text)
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
                -- xid: the top-level transaction, whose commit makes the events visible.
                INSERT INTO {s}.events (event_id, stream_key, stream_version, xid, event_type,
                        data, metadata, flags, correlation_id, causation_id, created_at)
                    SELECT u.event_id, v_key, o_version + u.n, pg_current_xact_id(),
                           u.event_type, u.data, u.metadata, u.flags, u.correlation_id,
                           u.causation_id, p_created_at
                    FROM unnest(p_event_ids, p_types, p_data, p_metadata, p_flags,
                                p_correlation, p_causation) WITH ORDINALITY
                         AS u(event_id, event_type, data, metadata, flags,
                              correlation_id, causation_id, n);
                o_version := o_version + v_count;
            EXCEPTION
                WHEN SQLSTATE 'EVS01' THEN
                    RETURN;
                WHEN unique_violation THEN
                    GET STACKED DIAGNOSTICS v_constraint = CONSTRAINT_NAME;
                    IF v_constraint = 'events_pkey' THEN
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
                WHEN OTHERS THEN
                    o_status := {STATUS_ERROR};
                    o_detail := SQLSTATE || ': ' || SQLERRM;
            END;
        END
        $fn$"""


def _link_function(sql: Sql) -> str:
    """``evstore_link``: link existing events into a stream, all or nothing."""
    s = sql.s
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
                    SELECT w.event_id, w.n, e.stream_key, row_number() OVER (
                            PARTITION BY w.event_id ORDER BY w.n) AS k
                        FROM unnest(p_event_ids) WITH ORDINALITY AS w(event_id, n)
                        JOIN {s}.events e ON e.event_id = w.event_id
                    ) u
                    WHERE u.k > 1 OR u.stream_key = v_key OR EXISTS (
                        SELECT 1 FROM {s}.links l
                        WHERE l.stream_key = v_key AND l.event_id = u.event_id)
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
                INSERT INTO {s}.links (stream_key, stream_version, event_id)
                    SELECT v_key, o_version + w.n, w.event_id
                    FROM unnest(p_event_ids) WITH ORDINALITY AS w(event_id, n);
                o_version := o_version + v_count;
                -- Linked events are readable in the stream as soon as this commits (once
                -- they have positions): wake followers in other processes, as a sequencer
                -- cycle does. Delivered at commit, dropped on rollback.
                PERFORM pg_notify({sql.channel_literal}, 'link');
                SELECT e.position INTO o_position
                    FROM {s}.events e WHERE e.event_id = p_event_ids[v_count];
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


def _sequence_function(sql: Sql) -> str:
    """``evstore_sequence``: one sequencer cycle, then the positions of ``p_waiting``.

    Returns the highest position ever assigned, for each event id in ``p_waiting`` its
    position (NULL: none yet; -1: the event no longer exists), and how many events this call
    numbered. The lock is only taken when a cheap check (no lock) finds something to number.
    """
    s = sql.s
    return f"""CREATE OR REPLACE FUNCTION {s}.evstore_sequence(p_waiting uuid[],
            OUT o_last_position bigint, OUT o_positions bigint[], OUT o_assigned bigint)
        LANGUAGE plpgsql AS $fn$
        DECLARE
            v_snapshot pg_snapshot;
        BEGIN
            o_assigned := 0;
            SELECT st.snapshot INTO v_snapshot FROM {s}.sequencer_state st;
            IF EXISTS (SELECT FROM {s}.events e WHERE {pending_condition("v_snapshot")}) THEN
                -- An advisory lock gives this transaction no xid, so the snapshot the
                -- numbering records is not held back by the sequencer itself. Each
                -- statement after it takes a fresh snapshot (READ COMMITTED), seeing the
                -- work of the cycles before it.
                PERFORM pg_advisory_xact_lock({sql.sequencer_lock_keys});
                SELECT p.o_last_position, p.o_assigned INTO o_last_position, o_assigned
                    FROM {s}.evstore_number_pending() p;
                IF o_assigned > 0 THEN
                    PERFORM pg_notify({sql.channel_literal}, o_last_position::text);
                END IF;
            ELSE
                SELECT st.last_position INTO o_last_position FROM {s}.sequencer_state st;
            END IF;
            o_positions := ARRAY(
                SELECT coalesce(e.position, CASE WHEN e.event_id IS NULL THEN -1 END)
                FROM unnest(p_waiting) WITH ORDINALITY AS w(event_id, n)
                LEFT JOIN {s}.events e ON e.event_id = w.event_id
                ORDER BY w.n);
        END
        $fn$"""


_BUILDERS = {
    "evstore_expectation_holds": _expectation_function,
    "evstore_number_pending": _number_pending_function,
    "evstore_write": _write_function,
    "evstore_append": _append_function,
    "evstore_link": _link_function,
    "evstore_sequence": _sequence_function,
}
"""Every function, by name, in the order they are created (dependencies first)."""

FUNCTION_NAMES = tuple(_BUILDERS)
"""The current functions, by name (each name is one function)."""
