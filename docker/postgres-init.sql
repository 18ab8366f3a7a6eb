-- Runs once, when the postgres service initialises an empty data volume, as the
-- POSTGRES_USER superuser connected to POSTGRES_DB (the Airflow metadata database).
-- Adds the `warehouse` database next to it, owned by the same user.
SELECT 'CREATE DATABASE warehouse'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'warehouse')\gexec
