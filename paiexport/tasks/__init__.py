"""Tasks: one module per task, listed in `TASKS`; `make_task` builds the recipe's.

Reference for the shape of this package: open_lth's base + registry + one file per strategy.
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from paiexport.tasks.base import Meter, Task, TaskConfig
from paiexport.tasks.classification import Classification, ClassificationConfig
from paiexport.tasks.custom import Custom
from paiexport.tasks.language_model import LanguageModel
from paiexport.tasks.multilabel import Multilabel
from paiexport.tasks.regression import Regression
from paiexport.tasks.segmentation import Segmentation

TASKS: dict[str, type[Task]] = {
    cls.config_class.model_fields["name"].default: cls
    for cls in (Classification, Regression, Multilabel, Segmentation, LanguageModel, Custom)
}

TaskSection = Annotated[
    Union[tuple(cls.config_class for cls in TASKS.values())],  # noqa: UP007 - built at runtime
    Field(discriminator="name"),
]


def make_task(config: TaskConfig | None = None) -> Task:
    """The task a recipe's `task:` section configures (classification when absent)."""
    config = config or ClassificationConfig()
    return TASKS[config.name](config)


def task_by_name(name: str) -> Task:
    """A built-in task with its defaults (`paiexport validate --task regression`)."""
    return make_task(TASKS[name].config_class())


__all__ = ["TASKS", "Meter", "Task", "TaskConfig", "TaskSection", "make_task", "task_by_name"]
