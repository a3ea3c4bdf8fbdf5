"""The one error prediction raises for bad input or a missing predictor."""


class PredictError(ValueError):
    """Bad input or missing predictor: the message is one line meant for the user."""
