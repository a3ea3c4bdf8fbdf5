"""The errors prediction raises; each message is one line meant for the user, each carries the exit
status every `nnenergy` command uses: 2 bad usage or input, 1 a failure while running."""


def first_line(exc: BaseException, limit: int = 300, default: str = "") -> str:
    """An exception's message as one line for the user: its first line, cut to `limit` characters
    (`default` when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else default


class PredictError(ValueError):
    """Bad input: the model, its file or shape, the batch size, a layer table or calibration file."""

    exit_code = 2


class PredictorUnavailable(PredictError):
    """No predictor to predict with: none trained or registered, a version or store that cannot load."""

    exit_code = 1
