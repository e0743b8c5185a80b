-- Roles and databases for a team setup on PostgreSQL (run once, as a superuser, with psql):
--   psql "$ADMIN_DSN" -v prefix=quarry -v prefect_password="'…'" -v app_password="'…'" -v analyst_password="'…'" \
--        -f warehouse/sql/postgres_roles.sql
-- <prefix>_prefect owns Prefect's database; <prefix>_app owns the DuckLake catalog and the ledger and is what
-- workers connect as; <prefix>_analyst can read both (notebooks, BI tools) and write nothing.
\set ON_ERROR_STOP on
\set prefect_role :prefix _prefect
\set app_role :prefix _app
\set analyst_role :prefix _analyst
\set prefect_db :prefix _prefect
\set lake_db :prefix _lake
\set ledger_db :prefix _ledger

CREATE ROLE :"prefect_role" LOGIN PASSWORD :prefect_password;
CREATE ROLE :"app_role" LOGIN PASSWORD :app_password;
CREATE ROLE :"analyst_role" LOGIN PASSWORD :analyst_password;

CREATE DATABASE :"prefect_db" OWNER :"prefect_role";
CREATE DATABASE :"lake_db" OWNER :"app_role";
CREATE DATABASE :"ledger_db" OWNER :"app_role";

REVOKE CONNECT ON DATABASE :"prefect_db" FROM PUBLIC;
REVOKE CONNECT ON DATABASE :"lake_db" FROM PUBLIC;
REVOKE CONNECT ON DATABASE :"ledger_db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"lake_db" TO :"analyst_role";
GRANT CONNECT ON DATABASE :"ledger_db" TO :"analyst_role";

-- analysts read every table the app role creates, now and later
\connect :"lake_db"
GRANT USAGE ON SCHEMA public TO :"analyst_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"app_role" IN SCHEMA public GRANT SELECT ON TABLES TO :"analyst_role";

\connect :"ledger_db"
GRANT USAGE ON SCHEMA public TO :"analyst_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"app_role" IN SCHEMA public GRANT SELECT ON TABLES TO :"analyst_role";
