"""The models a sweep measures: the model zoo (`nnenergy.zoo`), which prediction shares."""

from nnenergy.zoo import (  # noqa: F401
    BUILTIN,
    ArchitectureError,
    BuiltModel,
    application,
    application_names,
    build,
    check_name,
    family_of,
    is_generated,
    load_model_file,
)
