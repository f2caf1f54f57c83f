-- 0141: the identity index (tecken_symbols.identities). Each row maps one
-- protocol key (symsrv, SSQP, debuginfod; lower case) to the stored Tecken
-- object that answers it and the transform that turns the stored bytes into
-- what the client gets (identity, gunzip, cab, tar:<member>). Written by the
-- symbol writer with the object's FileUpload row, and by the backfill command.
-- object_md5: the md5 of the stored object's original bytes (names the derived
-- objects materialised from it); size: bytes served after the transform.

CREATE TABLE symbol_identities (
    id {{pk}},
    lookup_key TEXT NOT NULL,
    object_key TEXT NOT NULL,
    transform TEXT NOT NULL,
    file_name TEXT NOT NULL,
    kind TEXT NOT NULL,
    size BIGINT,
    object_md5 TEXT NOT NULL DEFAULT '',
    try_symbols BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX symbol_identities_lookup ON symbol_identities (lookup_key, try_symbols);
CREATE INDEX symbol_identities_object ON symbol_identities (object_key, try_symbols);

-- Which protocol asked for a missing symbol (tecken, symsrv, ssqp, debuginfod):
-- the one of the latest miss of that row.
ALTER TABLE missing_symbols ADD COLUMN protocol TEXT NOT NULL DEFAULT 'tecken';
