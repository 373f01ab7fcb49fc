"""MLflow "models from code" entry: the pyfunc that :func:`log_phase_model` logs."""

from mlflow.models import set_model

from specflow.registry.phase_model import PhaseModel

set_model(PhaseModel())
