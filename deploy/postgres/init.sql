-- Run once by the postgres image on an empty volume (/docker-entrypoint-initdb.d).
-- One server, three databases: Tiled's catalog, Tiled's tables, MLflow's tracking + registry.
CREATE DATABASE tiled;
CREATE DATABASE tiled_tables;
CREATE DATABASE mlflow;
