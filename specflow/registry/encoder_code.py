"""MLflow "models from code" entry: the pyfunc that :func:`log_encoder` logs."""

from mlflow.models import set_model

from specflow.registry.encoder_model import EncoderModel

set_model(EncoderModel())
