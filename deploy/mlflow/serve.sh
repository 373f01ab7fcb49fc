#!/usr/bin/env bash
# Start an MLflow tracking server for specflow. Extra arguments go to `mlflow server`.
# Defaults: SQLite + local artifacts under $MLFLOW_HOME (./mlflow_server), 127.0.0.1:5000.
set -euo pipefail
MLFLOW_HOME=${MLFLOW_HOME:-$PWD/mlflow_server}
mkdir -p "$MLFLOW_HOME/artifacts"
BACKEND=${MLFLOW_BACKEND_STORE_URI:-sqlite:///$MLFLOW_HOME/mlflow.db}
ARTIFACTS=${MLFLOW_ARTIFACTS_DESTINATION:-$MLFLOW_HOME/artifacts}
exec mlflow server --host 127.0.0.1 --port "${MLFLOW_PORT:-5000}" \
  --backend-store-uri "$BACKEND" --artifacts-destination "$ARTIFACTS" --workers 1 "$@"
