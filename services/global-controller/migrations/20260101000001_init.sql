-- GC schema: meetings and the registry of meeting controllers (MC) and
-- media handlers (MH). Times come from the database clock (now()) so GC
-- replicas agree on staleness.

CREATE TABLE meetings (
    meeting_id  UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    region      TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Placement, set at the first join and kept while the controllers live.
    mc_id       TEXT,
    mh_id       TEXT,
    assigned_at TIMESTAMPTZ
);

CREATE TABLE meeting_controllers (
    mc_id                TEXT PRIMARY KEY,
    region               TEXT NOT NULL,
    grpc_address         TEXT NOT NULL,
    webtransport_address TEXT NOT NULL,
    max_meetings         INTEGER NOT NULL CHECK (max_meetings > 0),
    max_participants     INTEGER NOT NULL CHECK (max_participants > 0),
    current_meetings     INTEGER NOT NULL DEFAULT 0,
    current_participants INTEGER NOT NULL DEFAULT 0,
    health               TEXT NOT NULL DEFAULT 'healthy',
    version              TEXT NOT NULL DEFAULT '',
    registered_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_heartbeat_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE media_handlers (
    mh_id                 TEXT PRIMARY KEY,
    region                TEXT NOT NULL,
    grpc_address          TEXT NOT NULL,
    media_address         TEXT NOT NULL,
    max_meetings          INTEGER NOT NULL CHECK (max_meetings > 0),
    max_participants      INTEGER NOT NULL CHECK (max_participants > 0),
    current_meetings      INTEGER NOT NULL DEFAULT 0,
    current_participants  INTEGER NOT NULL DEFAULT 0,
    bandwidth_utilization DOUBLE PRECISION NOT NULL DEFAULT 0,
    health                TEXT NOT NULL DEFAULT 'healthy',
    version               TEXT NOT NULL DEFAULT '',
    registered_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_heartbeat_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
