"""The code MLflow logs as a layerwise predictor's model (models from code): it builds the pyfunc, whose
`load_context` loads the predictor from the model's artifacts. See `nnenergy.learn.pyfunc`."""

from mlflow.models import set_model

from nnenergy.learn.pyfunc import LayerwisePyfunc

set_model(LayerwisePyfunc())
