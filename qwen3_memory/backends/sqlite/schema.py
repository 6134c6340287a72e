"""Forward-only schema migrations of the SQLite store, one script per version.

A database records every version applied in ``schema_version``; opening it applies the missing
scripts in order, each in its own transaction. Never edit a released script: add a new one.
"""

from __future__ import annotations

_V1 = """
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,            -- Discord message snowflake
    guild_id INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    author_id INTEGER NOT NULL,
    author_name TEXT NOT NULL DEFAULT '',
    content TEXT NOT NULL,
    created_at REAL NOT NULL,
    edited_at REAL
);
CREATE INDEX messages_by_channel ON messages(guild_id, channel_id, id);
CREATE INDEX messages_by_author ON messages(guild_id, author_id);
CREATE VIRTUAL TABLE messages_fts USING fts5(terms, tokenize = 'unicode61 remove_diacritics 2');
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    DELETE FROM messages_fts WHERE rowid = old.id;
END;
CREATE TABLE spaces (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    model TEXT NOT NULL,
    dimension INTEGER NOT NULL CHECK (dimension > 0),
    pooling TEXT NOT NULL,
    spec TEXT NOT NULL,                -- JSON of EmbeddingSpace: prompts, normalisation, load source
    created_at REAL NOT NULL
);
CREATE TABLE embeddings (
    space_id INTEGER NOT NULL REFERENCES spaces(id),
    message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    guild_id INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    vector BLOB NOT NULL,              -- float32, little endian, dimension of the space
    PRIMARY KEY (space_id, message_id)
) WITHOUT ROWID;
CREATE INDEX embeddings_by_channel ON embeddings(space_id, guild_id, channel_id, message_id);
CREATE INDEX embeddings_by_message ON embeddings(message_id);
CREATE TABLE vector_generations (
    space_id INTEGER NOT NULL,
    guild_id INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    PRIMARY KEY (space_id, guild_id, channel_id)
) WITHOUT ROWID;
CREATE TRIGGER embeddings_insert AFTER INSERT ON embeddings BEGIN
    INSERT INTO vector_generations VALUES (new.space_id, new.guild_id, new.channel_id, 1)
    ON CONFLICT DO UPDATE SET generation = generation + 1;
END;
CREATE TRIGGER embeddings_update AFTER UPDATE ON embeddings BEGIN
    UPDATE vector_generations SET generation = generation + 1
    WHERE space_id = new.space_id AND guild_id = new.guild_id AND channel_id = new.channel_id;
END;
CREATE TRIGGER embeddings_delete AFTER DELETE ON embeddings BEGIN
    UPDATE vector_generations SET generation = generation + 1
    WHERE space_id = old.space_id AND guild_id = old.guild_id AND channel_id = old.channel_id;
END;
CREATE TABLE channels (
    guild_id INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    read_space_id INTEGER NOT NULL REFERENCES spaces(id),
    enabled INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (guild_id, channel_id)
);
CREATE TABLE channel_write_spaces (
    guild_id INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    space_id INTEGER NOT NULL REFERENCES spaces(id),
    PRIMARY KEY (guild_id, channel_id, space_id)
);
"""

_V2 = """
CREATE TABLE migrations (
    id INTEGER PRIMARY KEY,
    source_space_id INTEGER NOT NULL REFERENCES spaces(id),
    target_space_id INTEGER NOT NULL REFERENCES spaces(id),
    strategy TEXT NOT NULL,
    status TEXT NOT NULL,              -- pending, running, paused, cancelled, failed, completed
    guild_id INTEGER,                  -- NULL: every guild (command line); the admin cog scopes to one
    options TEXT NOT NULL DEFAULT '{}',
    backup_path TEXT,
    log_path TEXT,
    error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE migration_channels (
    migration_id INTEGER NOT NULL REFERENCES migrations(id) ON DELETE CASCADE,
    guild_id INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    position INTEGER NOT NULL,          -- processing order (smallest channel first by default)
    status TEXT NOT NULL,              -- pending, backfill, catchup, verified, swapped, failed, rolled_back, finalized
    cursor INTEGER NOT NULL DEFAULT 0, -- last message id whose vector is committed in the target space
    total INTEGER NOT NULL DEFAULT 0,
    done INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    report TEXT,                       -- JSON verify report
    started_at REAL,
    finished_at REAL,
    PRIMARY KEY (migration_id, guild_id, channel_id)
);
CREATE TABLE migration_events (
    id INTEGER PRIMARY KEY,
    migration_id INTEGER NOT NULL REFERENCES migrations(id) ON DELETE CASCADE,
    at REAL NOT NULL,
    guild_id INTEGER,
    channel_id INTEGER,
    event TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE TABLE migration_artifacts (
    migration_id INTEGER NOT NULL REFERENCES migrations(id) ON DELETE CASCADE,
    name TEXT NOT NULL,                -- e.g. the fitted linear map of the transform strategy
    data BLOB NOT NULL,
    PRIMARY KEY (migration_id, name)
);
"""

_V3 = """
CREATE TABLE opted_out_users (          -- /memory forget-me: never capture this member in this guild again
    guild_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (guild_id, user_id)
) WITHOUT ROWID;
"""


def _logging_trigger(name: str, event: str, row: str, bump: str) -> str:
    """A trigger that bumps the (space, channel) generation and logs which message changed at it."""
    where = f"space_id = {row}.space_id AND guild_id = {row}.guild_id AND channel_id = {row}.channel_id"
    return f"""
CREATE TRIGGER {name} AFTER {event} ON embeddings BEGIN
    {bump.format(row=row, where=where)};
    INSERT INTO vector_changes(space_id, guild_id, channel_id, generation, message_id)
    SELECT {row}.space_id, {row}.guild_id, {row}.channel_id, generation, {row}.message_id
    FROM vector_generations WHERE {where};
END;"""


_INSERT_BUMP = (
    "INSERT INTO vector_generations VALUES ({row}.space_id, {row}.guild_id, {row}.channel_id, 1) "
    "ON CONFLICT DO UPDATE SET generation = generation + 1"
)
_CHANGE_BUMP = "UPDATE vector_generations SET generation = generation + 1 WHERE {where}"

# Which message's vector changed at each generation of a (space, channel): a process whose cached index
# is at generation g applies exactly the changes after g (another process's writes included) instead
# of rebuilding, and can tell when the log no longer reaches back to g (then it rebuilds).
# The deletion ledger: every message deleted (in Discord, or forgotten on a member's request) is
# recorded by a trigger, whatever path deleted it, and no write path stores a message it lists again;
# a restore applies it to the older database it brings back.
# And job claims as lease rows (see qwen3_memory.backends.sqlite.claims), so that the bot and a
# command-line migration on one SQLite memory never run the same job at once.
_V4 = (
    """
CREATE TABLE forgotten_messages (
    message_id INTEGER PRIMARY KEY,
    guild_id INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    author_id INTEGER NOT NULL,
    forgotten_at REAL NOT NULL
);
CREATE TRIGGER messages_forgotten AFTER DELETE ON messages BEGIN
    INSERT OR IGNORE INTO forgotten_messages VALUES (old.id, old.guild_id, old.channel_id, old.author_id,
                                                    CAST(strftime('%s', 'now') AS REAL));
END;
CREATE TABLE claims (
    key INTEGER PRIMARY KEY,           -- claim_key(...) of e.g. ("job", 7)
    name TEXT NOT NULL,                -- "job 7", for people reading the table
    holder TEXT NOT NULL,              -- host:pid:token of the claims object holding it
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    process_started REAL NOT NULL,     -- the holder process's start time: a reused pid is not the holder
    since REAL NOT NULL,
    expires_at REAL NOT NULL           -- pushed forward by the holder's heartbeat
);
CREATE TABLE vector_changes (
    space_id INTEGER NOT NULL,
    guild_id INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    PRIMARY KEY (space_id, guild_id, channel_id, generation)
) WITHOUT ROWID;
DROP TRIGGER embeddings_insert;
DROP TRIGGER embeddings_update;
DROP TRIGGER embeddings_delete;"""
    + _logging_trigger("embeddings_insert", "INSERT", "new", _INSERT_BUMP)
    + _logging_trigger("embeddings_update", "UPDATE", "new", _CHANGE_BUMP)
    + _logging_trigger("embeddings_delete", "DELETE", "old", _CHANGE_BUMP)
)

# Recall filters (an author, a time range) and the lines around a hit read one channel's messages by author and
# by time: these indexes cover those reads (the rowid, the message id, is part of every index).
_V5 = """
CREATE INDEX messages_by_channel_time ON messages(guild_id, channel_id, created_at);
CREATE INDEX messages_by_channel_author ON messages(guild_id, channel_id, author_id, created_at);
"""

# Discord-history imports: per channel (or thread) what was asked and how far it got, so a restart or a
# kill resumes after the newest message whose page was written (qwen3_memory.history.cursors).
_V6 = """
CREATE TABLE history_imports (
    guild_id INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,       -- a channel, a thread or a forum post
    parent_id INTEGER NOT NULL DEFAULT 0,  -- the thread's channel; 0 for a channel
    status TEXT NOT NULL,              -- queued, running, paused, done, cancelled, failed
    cursor INTEGER NOT NULL DEFAULT 0, -- newest message id whose page is written; the import resumes after it
    queued_up_to INTEGER NOT NULL DEFAULT 0,  -- newest id handed to the writer: a resume embeds what lacks vectors
    read_count INTEGER NOT NULL DEFAULT 0,
    stored_count INTEGER NOT NULL DEFAULT 0,
    skipped_count INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (guild_id, channel_id)
);
"""

# Version 7: each space's own score floor (the cosine under which recall drops a result), calibrated when the
# space is verified: from a labelled set, or label-free from queries asked where they have no answer.
_V7 = """
CREATE TABLE space_floors (
    space_id INTEGER PRIMARY KEY REFERENCES spaces(id),
    floor REAL NOT NULL,
    basis TEXT NOT NULL,               -- 'labelled' or 'label-free'
    detail TEXT NOT NULL DEFAULT '{}', -- JSON: the numbers the floor was computed from
    measured_at REAL NOT NULL
);
"""

# Version 8: each full-text row also holds its terms scoped to its channel ("word" of channel 42 adds
# "c42xword"), so one channel's BM25 reads its own postings; the vocabulary table gives each plain term's
# document count for the whole table's word rarity (qwen3_memory.backends.sqlite.channel_bm25).
_V8 = """
CREATE VIRTUAL TABLE messages_fts_vocab USING fts5vocab(messages_fts, row);
UPDATE messages_fts
SET terms = terms || (
    SELECT ' c' || m.channel_id || 'x' || replace(messages_fts.terms, ' ', ' c' || m.channel_id || 'x')
    FROM messages m WHERE m.id = messages_fts.rowid)
WHERE terms <> '' AND rowid IN (SELECT id FROM messages);
"""

SCHEMA_MIGRATIONS: dict[int, str] = {1: _V1, 2: _V2, 3: _V3, 4: _V4, 5: _V5, 6: _V6, 7: _V7, 8: _V8}
SCHEMA_VERSION = max(SCHEMA_MIGRATIONS)
