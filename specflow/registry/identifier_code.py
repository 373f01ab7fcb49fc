"""MLflow "models from code" entry: the pyfunc that :func:`log_identifier` logs."""

from mlflow.models import set_model

from specflow.registry.identifier_model import IdentifierModel

set_model(IdentifierModel())
