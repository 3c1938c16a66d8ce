-- Temporal keeps its own databases beside cardwarden's on the same Postgres.
CREATE DATABASE temporal;
CREATE DATABASE temporal_visibility;
