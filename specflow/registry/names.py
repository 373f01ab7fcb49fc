"""Default names of the registry (no MLflow import: the CLI's options read them)."""

DEFAULT_EXPERIMENT = "specflow"
DEFAULT_MODEL_NAME = "specflow-phase"
DEFAULT_ALIAS = "champion"
DEFAULT_MODEL_URI = f"models:/{DEFAULT_MODEL_NAME}@{DEFAULT_ALIAS}"
DEFAULT_IDENTIFIER_NAME = "specflow-identify"  # the phase identifier's registered model
DEFAULT_ENCODER_NAME = "specflow-encoder"  # pretrained SSL encoders a probe starts from
